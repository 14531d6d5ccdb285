"""Orthanc as the hospital's PACS on this machine: its own process, its own JSON config, loopback ports.

``Orthanc(workdir).start()`` writes ``workdir/orthanc.json`` (storage and index under ``workdir/storage``,
HTTP and DICOM ports picked free on 127.0.0.1, the DICOMweb plugin when Debian's ``orthanc-dicomweb``
is installed), starts ``/usr/sbin/Orthanc`` with it, its output going to ``workdir/orthanc.log``, and
waits until the REST API answers and the DICOM port accepts a connection. A port another process took
between picking and binding (Orthanc exits) is retried on fresh ports; every failure raises
``OrthancError`` with the tail of the log. ``stop()`` ends it gracefully (SIGTERM, then SIGKILL);
``start()`` again reuses the same ports and storage, which is how a test takes the PACS down while
results arrive and brings it back with what it had stored.

The REST helpers are the few calls the tests, ``make demo`` and the benchmark need: upload an instance,
declare a DICOM modality (the gateway) and send a study to it with C-STORE, find a study's instances,
read an instance's file or tags. Only the standard library talks HTTP here.

Development only, like the rest of ``boneage.devstack``; the system service of the Debian package is never
touched (it may be running on its default ports 4242/8042: ours never uses those).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BINARY = "/usr/sbin/Orthanc"
PLUGIN_DIR = Path("/usr/share/orthanc/plugins")
DICOMWEB_PLUGIN = PLUGIN_DIR / "libOrthancDicomWeb.so"
DEFAULT_AET = "PACS"
# One line per stored instance (Orthanc's Lua API: OnStoredInstance runs after each store, a re-store included).
RECEIPTS_LUA = """
function OnStoredInstance(instanceId, tags, metadata, origin)
   local f = io.open(RECEIPTS_PATH, 'a')
   f:write(instanceId .. '\\t' .. (tags['SOPInstanceUID'] or '') .. '\\t' .. (origin['RequestOrigin'] or '') ..
           '\\t' .. (origin['RemoteAet'] or '') .. '\\n')
   f:close()
end
"""
START_ATTEMPTS = 4               # fresh ports each time Orthanc cannot bind the ones picked


class OrthancError(RuntimeError):
    """Orthanc did not start, stopped unexpectedly, or a REST call failed; the message has the log's tail."""


def orthanc_binary() -> str | None:
    """The Orthanc executable: ``ORTHANC_BINARY`` if set, the Debian package's, or one on PATH."""
    for candidate in (os.environ.get("ORTHANC_BINARY"), BINARY, shutil.which("Orthanc")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    """A port nothing listens on now, on any interface (Orthanc 1.10 binds its DICOM port on all of them);
    the caller binds it soon after, and ``Orthanc.start`` retries the race on fresh ports."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Modality:
    """A DICOM node Orthanc knows: where its C-STORE SCU sends (the gateway, a storescp)."""

    aet: str
    host: str
    port: int

    def as_json(self) -> dict[str, Any]:
        return {"AET": self.aet, "Host": self.host, "Port": self.port}


@dataclass
class Orthanc:
    workdir: Path
    aet: str = DEFAULT_AET
    modalities: dict[str, Modality] = field(default_factory=dict)
    dicomweb: bool | None = None            # None: load the plugin when it is installed
    host: str = "127.0.0.1"
    http_port: int = 0
    dicom_port: int = 0
    binary: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_offset: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()     # Orthanc runs in it and reads its config from it

    # -- life cycle ----------------------------------------------------------------------------
    @property
    def storage(self) -> Path:
        return self.workdir / "storage"

    @property
    def log_path(self) -> Path:
        return self.workdir / "orthanc.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "orthanc.json"

    @property
    def lua_path(self) -> Path:
        return self.workdir / "receipts.lua"

    @property
    def receipts_path(self) -> Path:
        return self.workdir / "receipts.tsv"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def has_dicomweb(self) -> bool:
        return bool(self.dicomweb if self.dicomweb is not None else DICOMWEB_PLUGIN.exists())

    def config(self) -> dict[str, Any]:
        """Orthanc's configuration: loopback-only REST without authentication, no disk compression, and the
        modalities it may send to. Options are those of Orthanc 1.10's documented ``Configuration.json``."""
        cfg: dict[str, Any] = {
            "Name": f"boneage-devstack-{self.aet}",
            "StorageDirectory": str(self.storage), "IndexDirectory": str(self.storage),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": self.aet,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "HttpDescribeErrors": True,
            "DicomCheckCalledAet": False, "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True,
            "StorageCompression": False, "HttpCompressionEnabled": False,
            # Stores arrive in parallel from several associations (the benchmark); short timeouts keep a dead
            # peer from holding a test.
            "DicomScpTimeout": 30, "DicomScuTimeout": 30, "HttpTimeout": 30, "StableAge": 2,
            "DicomModalities": {name: m.as_json() for name, m in self.modalities.items()},
            "Plugins": [str(DICOMWEB_PLUGIN)] if self.has_dicomweb else [],
            "SaveJobs": False,
            # A second C-STORE of an instance it has is stored again (with False it is answered "AlreadyStored"
            # without running the hook below), so ``receipts`` sees a result delivered twice, not only one
            # assessed twice (whose results would have new SOP Instance UIDs).
            "OverwriteInstances": True,
            "LuaScripts": [str(self.lua_path)],
        }
        if self.has_dicomweb:
            cfg["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": False}
        return cfg

    def start(self, *, timeout_s: float = 60) -> Orthanc:
        """Start (or restart, on the same ports and storage) and wait until REST and DICOM both answer."""
        if self.running:
            return self
        self.binary = self.binary or orthanc_binary()
        if self.binary is None:
            raise OrthancError("Orthanc is not installed (Debian: apt-get install orthanc), or set ORTHANC_BINARY")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        fixed = bool(self.http_port and self.dicom_port)
        for attempt in range(1 if fixed else START_ATTEMPTS):
            if not fixed:
                self.http_port, self.dicom_port = free_port(), free_port()
                while self.dicom_port == self.http_port:
                    self.dicom_port = free_port()
            if self._launch(timeout_s):
                return self
            if not fixed and attempt + 1 < START_ATTEMPTS and self._port_conflict():
                self.http_port = self.dicom_port = 0
                continue
            break
        raise OrthancError(f"Orthanc did not start on HTTP {self.http_port} / DICOM {self.dicom_port}; "
                           f"its log ({self.log_path}):\n{self.log_tail()}")

    def _launch(self, timeout_s: float) -> bool:
        self.lua_path.write_text(RECEIPTS_LUA.replace("RECEIPTS_PATH", json.dumps(str(self.receipts_path))))
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"\n--- starting {self.binary} {self.config_path} at {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            # Its own session: a Ctrl-C in the terminal reaches the demo, which stops Orthanc in order.
            self.process = subprocess.Popen([str(self.binary), str(self.config_path)], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError, ValueError, OrthancError):
                if self.get("/system", timeout_s=2).get("DicomAet") == self.aet and port_open(self.host, self.dicom_port):
                    return True
            time.sleep(0.1)
        self.kill()
        return False

    def _port_conflict(self) -> bool:
        # Orthanc 1.10: "The TCP port of the DICOM server is privileged or already in use" (HTTP likewise).
        return "already in use" in self._launch_log().lower()

    def _launch_log(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, *, timeout_s: float = 20) -> None:
        """SIGTERM and wait (Orthanc finishes its writes and closes its index), SIGKILL if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- REST ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | Mapping[str, Any] | Sequence[Any] | str | None = None,
                *, timeout_s: float = 60, raw: bool = False, accept: str | None = None,
                content_type: str | None = None) -> Any:
        """One REST call; JSON in (mappings and lists) and out, or bytes with ``raw``."""
        data: bytes | None
        headers = {}
        if body is None or isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
            headers["Content-Type"] = "text/plain"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:2000].decode(errors="replace")
            raise OrthancError(f"{method} {path}: HTTP {exc.code} {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise OrthancError(f"{method} {path}: {exc}; Orthanc {'running' if self.running else 'not running'}"
                               ) from exc
        if raw:
            return payload
        return json.loads(payload) if payload.strip() else None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def upload(self, dicom: bytes) -> dict[str, Any]:
        """Store one Part 10 file as if a modality had sent it; returns Orthanc's answer (ID, ParentStudy ...)."""
        answer = self.post("/instances", dicom)
        if not isinstance(answer, dict) or answer.get("Status") not in ("Success", "AlreadyStored"):
            raise OrthancError(f"upload refused: {answer}")
        return answer

    def add_modality(self, name: str, modality: Modality) -> None:
        """Declare (or re-declare) a modality at run time; it is also written into the config for a restart."""
        self.modalities[name] = modality
        self.request("PUT", f"/modalities/{name}", modality.as_json())
        self.config_path.write_text(json.dumps(self.config(), indent=2))

    def echo(self, name: str) -> bool:
        """C-ECHO from Orthanc to a declared modality."""
        try:
            self.post(f"/modalities/{name}/echo", {})
            return True
        except OrthancError:
            return False

    def send(self, name: str, resources: Sequence[str], *, timeout_s: float = 300) -> dict[str, Any]:
        """C-STORE the given Orthanc resources (studies, series or instances, by Orthanc ID) to a modality,
        synchronously: returns when the modality acknowledged them all, raises if it refused any."""
        return self.post(f"/modalities/{name}/store", {"Resources": list(resources), "Synchronous": True,
                                                       "Timeout": int(timeout_s)}, timeout_s=timeout_s + 10)

    def study_id(self, study_uid: str) -> str | None:
        """Orthanc's ID of a study, by StudyInstanceUID (None when it has none)."""
        found = self.post("/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}})
        return found[0] if found else None

    def study_instances(self, study_uid: str) -> list[dict[str, Any]]:
        """Every instance of a study, each ``{"ID", "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID",
        "Modality", "url"}`` (``url``: the instance's file through the REST API)."""
        study = self.study_id(study_uid)
        if study is None:
            return []
        found = []
        for inst in self.get(f"/studies/{study}/instances"):
            tags = inst.get("MainDicomTags", {})
            series = self.get(f"/series/{inst['ParentSeries']}")["MainDicomTags"]
            found.append({"ID": inst["ID"], "SOPInstanceUID": tags.get("SOPInstanceUID"),
                          "SOPClassUID": self.sop_class(inst["ID"]),
                          "SeriesInstanceUID": series.get("SeriesInstanceUID"), "Modality": series.get("Modality"),
                          "url": f"{self.url}/instances/{inst['ID']}/file"})
        return found

    def sop_class(self, instance_id: str) -> str | None:
        value = self.request("GET", f"/instances/{instance_id}/content/0008,0016", raw=True)
        return value.decode(errors="replace").strip("\x00 ") or None

    def instance_file(self, instance_id: str) -> bytes:
        return self.request("GET", f"/instances/{instance_id}/file", raw=True)

    def instance_tags(self, instance_id: str) -> dict[str, Any]:
        return self.get(f"/instances/{instance_id}/simplified-tags")

    def receipts(self) -> list[dict[str, str]]:
        """Every instance Orthanc stored, in order, re-stores of one it had included (its Lua hook
        ``OnStoredInstance`` runs for each): ``{"ID", "SOPInstanceUID", "origin", "remote_aet"}``.
        A result delivered twice shows twice here, though Orthanc keeps one copy."""
        try:
            text = self.receipts_path.read_text()
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) == 4:
                found.append(dict(zip(("ID", "SOPInstanceUID", "origin", "remote_aet"), parts)))
        return found

    def instance_count(self) -> int:
        return int(self.get("/statistics")["CountInstances"])
