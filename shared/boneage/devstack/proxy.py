"""A TCP relay on loopback whose far side can be cut: the network between the gateway and AWS, for fault tests.

``TcpProxy(target_port).start()`` listens on a free 127.0.0.1 port and relays every connection to the
target. ``cut()`` closes the listening socket and every open connection, so a client sees what it sees
when the network is down: connections refused (a real ``ECONNREFUSED``, no emulation in the client);
``restore()`` listens again on the same port. Nothing is buffered or altered while it relays.

The open connections are shut down (``SO_LINGER`` 0, then ``shutdown``), not only closed: on Linux a bare
``close`` wakes neither the relay's threads blocked reading them nor the peer, so a client's pooled
keep-alive connection (boto3's) would live on through the cut. The one relay of the tests, ``make demo``
and ``make bench``; ``tests/integration/test_gateway.py`` shows a held connection reset by the cut.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    target_port: int
    target_host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0                 # accepted so far (a test checks the client really went through here)
    _server: socket.socket | None = field(default=None, repr=False)
    _open: set[socket.socket] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        return self._server is not None

    def start(self) -> TcpProxy:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:         # restore(): the port may linger a moment after the cut
            try:
                server.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if not self.port or time.monotonic() > deadline:
                    server.close()
                    raise
                time.sleep(0.1)
        server.listen(128)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, args=(server,), name=f"proxy-{self.port}", daemon=True).start()
        return self

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for s in sockets:
            with contextlib.suppress(OSError):      # linger 0: the peer gets a reset, as from a dead link
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            with contextlib.suppress(OSError):      # wakes the relay threads blocked in recv
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        if self._server is None:
            self.start()

    def stop(self) -> None:
        self.cut()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return          # cut
            try:
                upstream = socket.create_connection((self.target_host, self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._server is not server:      # cut while connecting
                    client.close()
                    upstream.close()
                    return
                self._open.update((client, upstream))
                self.connections += 1
            pending = [2]       # both directions ended: close the pair
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, client, upstream, pending), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, client: socket.socket, upstream: socket.socket,
              pending: list[int]) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        with self._lock:
            pending[0] -= 1
            last = pending[0] == 0
            if last:
                self._open.discard(client)
                self._open.discard(upstream)
        if last:
            client.close()
            upstream.close()
