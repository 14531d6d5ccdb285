"""dcmtk's command-line tools as a modality and as a bare DICOM receiver: ``echoscu``, ``storescu``, ``storescp``.

``storescu`` is run with ``-v`` and its log read line by line, so the caller knows exactly which files
the receiver acknowledged (``Received Store Response (Success)`` after ``Sending file: PATH``) even when
the association dies half-way, and can act while the transfer runs (``on_ack``: the test that kills the
gateway in the middle of one). Nothing here interprets DICOM: what the tools report is what counts.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .orthanc import free_port, port_open


def dcmtk_available() -> bool:
    return all(shutil.which(t) for t in ("echoscu", "storescu", "storescp"))


def echoscu(host: str, port: int, *, called_aet: str, calling_aet: str = "ECHOSCU", timeout_s: int = 10) -> bool:
    """C-ECHO; True when the peer accepted the association and answered."""
    result = subprocess.run(["echoscu", "-aet", calling_aet, "-aec", called_aet, "-to", str(timeout_s),
                             "-ta", str(timeout_s), host, str(port)], capture_output=True, text=True,
                            timeout=timeout_s + 10)
    return result.returncode == 0


@dataclass
class StoreResult:
    returncode: int
    acknowledged: list[Path] = field(default_factory=list)     # success (or warning) status from the receiver
    refused: list[Path] = field(default_factory=list)          # an error status for that file
    log: list[str] = field(default_factory=list)
    seconds: float = 0.0
    ack_times: dict[Path, float] = field(default_factory=dict)  # wall clock (time.time()) of each acknowledgement

    @property
    def unacknowledged(self) -> list[Path]:
        return [p for p in self._sent_order if p not in self.acknowledged]

    _sent_order: list[Path] = field(default_factory=list, repr=False)


def storescu(files: Sequence[Path], host: str, port: int, *, called_aet: str, calling_aet: str = "MODALITY",
             timeout_s: float = 120, on_ack: Callable[[Path, int], None] | None = None) -> StoreResult:
    """Send ``files`` over one association, as a console pushes a study; never raises for a refused or
    broken association (the result says what was acknowledged). ``on_ack(path, count)`` is called as each
    acknowledgement arrives."""
    cmd = ["storescu", "-v", "-aet", calling_aet, "-aec", called_aet, "-to", "10", "-ta", "10", "-td", "30",
           host, str(port), *map(str, files)]
    result = StoreResult(returncode=-1, _sent_order=list(map(Path, files)))
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
    current: Path | None = None
    try:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.rstrip("\n")
            result.log.append(line)
            if "Sending file: " in line:
                current = Path(line.split("Sending file: ", 1)[1].strip())
            elif "Received Store Response" in line and current is not None:
                if "(Success" in line or "(Warning" in line:
                    result.acknowledged.append(current)
                    result.ack_times[current] = time.time()
                    if on_ack is not None:
                        on_ack(current, len(result.acknowledged))
                else:
                    result.refused.append(current)
                current = None
            if time.monotonic() - started > timeout_s:
                proc.kill()
                break
        result.returncode = proc.wait(max(1.0, timeout_s - (time.monotonic() - started)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    result.seconds = round(time.monotonic() - started, 3)
    return result


@dataclass
class StoreSCP:
    """dcmtk's ``storescp`` writing what it receives into ``folder``: a DICOM node nobody here wrote, to check
    that Orthanc's C-STORE SCU reaches a modality (the harness's own test)."""

    folder: Path
    aet: str = "STORESCP"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10) -> StoreSCP:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log = (self.folder.parent / f"storescp-{self.port}.log").open("ab")
        self.process = subprocess.Popen(["storescp", "-v", "-aet", self.aet, "-od", str(self.folder), "-uf",
                                         str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"storescp did not listen on {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def received(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())
