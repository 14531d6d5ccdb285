"""The gateway's durable local spool: everything it has acknowledged or owes, one file per item.

Layout under ``spool_dir``::

    inbox/<ref>.dcm                  received instances not yet uploaded (bytes as received)
    uploaded/<ref>.json              the dedupe ledger: one entry per SOP Instance UID uploaded, with its
                                     object key, version, upload_id and the source's UIDs (local only)
    deliveries/pending/<upload_id>.json   results owed to the PACS (attempts, next attempt, files sent)
    deliveries/files/<upload_id>/         the SC and SR fetched for a pending delivery
    deliveries/done/<upload_id>.json      delivered: never sent again
    deliveries/dead/<upload_id>.json      refused ``max_delivery_attempts`` times, or failing for ``max_delivery_age_s``
                                          (``boneage gateway resend``)
    outcomes/<upload_id>.json        rejections and failures, kept for the operator (never sent as images)
    ignored/<ref>.json               instances acknowledged but never uploaded (no bytes kept): objects that
                                     are not radiographs (SR, presentation states, key objects ...) and our
                                     own results coming back in a study send; their reason and SOP class
    own/<ref>                        the results this gateway delivered (marked before they are sent), so a
                                     PACS sending them back is recognised by SOP Instance UID
    tmp/                             files being written
    gateway.lock                     held (flock) by the running gateway

``ref`` is ``sha256(SOP Instance UID)[:32]``: the name of the instance everywhere outside this spool
(object keys, logs), so nothing we write off site or log carries a UID, name or accession number.

Every write goes to ``tmp/``, is fsync'd, renamed into place and the directory fsync'd: after a crash
(SIGKILL, power loss) a file is either whole in its final place or not there. A move between states is
a rename followed by fsync of both directories. Nothing is ever deleted before its next state is durable.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECEIVED = "received"
DUPLICATE = "duplicate"


def ref_for(sop_instance_uid: str) -> str:
    """The PHI-free name of one instance: the same UID always gives the same ref."""
    return hashlib.sha256(sop_instance_uid.strip().rstrip("\x00").encode()).hexdigest()[:32]


@dataclass
class Delivery:
    """One result owed to the PACS: the report files (name -> key in the results bucket) of one upload."""

    upload_id: str
    ref: str
    report_keys: dict[str, str]
    sent: list[str] = field(default_factory=list)
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    created_at: float = 0.0
    refusals: int = 0                       # failures the PACS meant (retrying will not help)
    failing_since: float = 0.0              # first failure since the last success or resend; 0: none
    dead_reason: str | None = None          # "refused" or "max_age" once dead-lettered

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Delivery:
        return cls(upload_id=raw["upload_id"], ref=raw["ref"], report_keys=dict(raw["report_keys"]),
                   sent=list(raw.get("sent", [])), attempts=int(raw.get("attempts", 0)),
                   next_attempt_at=float(raw.get("next_attempt_at", 0.0)), last_error=raw.get("last_error"),
                   created_at=float(raw.get("created_at", 0.0)), refusals=int(raw.get("refusals", 0)),
                   failing_since=float(raw.get("failing_since", 0.0)), dead_reason=raw.get("dead_reason"))


class SpoolLocked(RuntimeError):
    """Another gateway process holds this spool."""


class Spool:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.inbox = self.root / "inbox"
        self.uploaded = self.root / "uploaded"
        self.pending = self.root / "deliveries" / "pending"
        self.files = self.root / "deliveries" / "files"
        self.done = self.root / "deliveries" / "done"
        self.dead = self.root / "deliveries" / "dead"
        self.outcomes = self.root / "outcomes"
        self.ignored = self.root / "ignored"
        self.own = self.root / "own"
        self.tmp = self.root / "tmp"
        self._lock = threading.Lock()            # one receive at a time decides "new or duplicate"
        self._lock_fd: int | None = None

    # --- set-up -------------------------------------------------------------------------------

    def create(self) -> Spool:
        for d in (self.inbox, self.uploaded, self.pending, self.files, self.done, self.dead, self.outcomes,
                  self.ignored, self.own, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():     # a write that a crash interrupted never reached its place
            leftover.unlink(missing_ok=True)
        return self

    def lock(self) -> None:
        """Hold the spool for this process (released when it exits, however it exits)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "gateway.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLocked(f"another gateway is running on {self.root}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def running(self) -> bool:
        """Whether a gateway process holds this spool now."""
        path = self.root / "gateway.lock"
        if self._lock_fd is not None:
            return True
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # --- durable primitives -------------------------------------------------------------------

    def _fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_atomic(self, path: Path, data: bytes) -> None:
        """``data`` at ``path``, durably, or an ``OSError`` and nothing at ``path``."""
        tmp = self.tmp / f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._fsync_dir(path.parent)

    def _write_json(self, path: Path, value: Mapping[str, Any]) -> None:
        self.write_atomic(path, json.dumps(value, sort_keys=True).encode())

    def _write_json_once(self, path: Path, value: Mapping[str, Any]) -> bool:
        """Write ``value`` at ``path`` unless something is there already; False when it was."""
        if path.exists():
            return False
        self._write_json(path, value)
        return True

    def _move(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)
        self._fsync_dir(dst.parent)
        self._fsync_dir(src.parent)

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    # --- inbound ------------------------------------------------------------------------------

    def receive(self, sop_instance_uid: str, data: bytes) -> tuple[str, str]:
        """Persist one received instance; returns (``RECEIVED`` or ``DUPLICATE``, ref). Returns only
        once the bytes are on disk; raises ``OSError`` when they cannot be."""
        ref = ref_for(sop_instance_uid)
        with self._lock:
            if (self.uploaded / f"{ref}.json").exists() or (self.inbox / f"{ref}.dcm").exists():
                return DUPLICATE, ref
            self.write_atomic(self.inbox / f"{ref}.dcm", data)
        return RECEIVED, ref

    def ignore(self, ref: str, entry: Mapping[str, Any]) -> bool:
        """Record an instance acknowledged but not uploaded (no bytes kept); False when it already was."""
        return self._write_json_once(self.ignored / f"{ref}.json", {**entry, "ref": ref, "ignored_at": time.time()})

    def mark_own_result(self, ref: str) -> None:
        """Remember a result this gateway delivers (before it is sent: it may come straight back)."""
        path = self.own / ref
        if not path.exists():
            self.write_atomic(path, b"")

    def is_own_result(self, ref: str) -> bool:
        return (self.own / ref).exists()

    def inbox_refs(self) -> list[str]:
        """Instances waiting for upload, oldest first."""
        entries = []
        for p in self.inbox.glob("*.dcm"):
            try:
                entries.append((p.stat().st_mtime_ns, p.stem))
            except FileNotFoundError:
                continue
        return [ref for _, ref in sorted(entries)]

    def inbox_path(self, ref: str) -> Path:
        return self.inbox / f"{ref}.dcm"

    def mark_uploaded(self, ref: str, entry: Mapping[str, Any]) -> None:
        """Record the upload in the ledger, then (only then) drop the spooled bytes."""
        self._write_json(self.uploaded / f"{ref}.json", {**entry, "ref": ref})
        self.inbox_path(ref).unlink(missing_ok=True)
        self._fsync_dir(self.inbox)

    def uploaded_entry(self, ref: str) -> dict[str, Any] | None:
        return self._read_json(self.uploaded / f"{ref}.json")

    def known_refs(self) -> list[str]:
        """Every instance received: waiting in the inbox or uploaded."""
        return [p.stem for p in self.inbox.glob("*.dcm")] + [p.stem for p in self.uploaded.glob("*.json")]

    def find_upload(self, upload_id: str) -> dict[str, Any] | None:
        """The ledger entry whose upload_id is this one (a scan: used only when a result names no key)."""
        for p in self.uploaded.glob("*.json"):
            entry = self._read_json(p)
            if entry and entry.get("upload_id") == upload_id:
                return entry
        return None

    # --- outbound -----------------------------------------------------------------------------

    def delivery_state(self, upload_id: str) -> str | None:
        for state, folder in (("pending", self.pending), ("done", self.done), ("dead", self.dead)):
            if (folder / f"{upload_id}.json").exists():
                return state
        return None

    def add_delivery(self, delivery: Delivery) -> bool:
        """Record a result to deliver; False when this upload's result is already pending, delivered
        or dead-lettered (a redelivered message, the same result twice)."""
        with self._lock:
            if self.delivery_state(delivery.upload_id) is not None:
                return False
            delivery.created_at = delivery.created_at or time.time()
            self._write_json(self.pending / f"{delivery.upload_id}.json", asdict(delivery))
        return True

    def pending_deliveries(self) -> list[Delivery]:
        out = []
        for p in sorted(self.pending.glob("*.json")):
            raw = self._read_json(p)
            if raw is not None:
                out.append(Delivery.from_dict(raw))
        return sorted(out, key=lambda d: (d.next_attempt_at, d.created_at))

    def save_delivery(self, delivery: Delivery) -> None:
        self._write_json(self.pending / f"{delivery.upload_id}.json", asdict(delivery))

    def delivery_dir(self, upload_id: str) -> Path:
        return self.files / upload_id

    def finish_delivery(self, delivery: Delivery, *, dead: bool) -> None:
        """pending -> done (its fetched files dropped) or -> dead (its files kept for the resend)."""
        self.save_delivery(delivery)
        self._move(self.pending / f"{delivery.upload_id}.json",
                   (self.dead if dead else self.done) / f"{delivery.upload_id}.json")
        if not dead:
            folder = self.delivery_dir(delivery.upload_id)
            for f in folder.glob("*"):
                f.unlink(missing_ok=True)
            if folder.exists():
                folder.rmdir()

    def resend(self) -> list[str]:
        """Every dead-lettered delivery back to pending, attempts reset; returns their upload ids."""
        moved = []
        with self._lock:
            for p in sorted(self.dead.glob("*.json")):
                raw = self._read_json(p)
                if raw is None:
                    continue
                delivery = Delivery.from_dict(raw)
                delivery.attempts, delivery.next_attempt_at = 0, 0.0
                delivery.refusals, delivery.failing_since, delivery.dead_reason = 0, 0.0, None
                self._write_json(p, asdict(delivery))
                self._move(p, self.pending / p.name)
                moved.append(delivery.upload_id)
        return moved

    def record_outcome(self, upload_id: str, entry: Mapping[str, Any]) -> bool:
        """A rejection or failure, kept for the operator; False when already recorded."""
        return self._write_json_once(self.outcomes / f"{upload_id}.json",
                                     {**entry, "upload_id": upload_id, "recorded_at": time.time()})

    # --- status -------------------------------------------------------------------------------

    def _entries(self, folder: Path, pattern: str = "*.json") -> Iterator[Path]:
        return folder.glob(pattern) if folder.exists() else iter(())

    def status(self) -> dict[str, Any]:
        inbox = list(self._entries(self.inbox, "*.dcm"))
        size = 0
        for p in inbox:
            try:
                size += p.stat().st_size
            except FileNotFoundError:
                pass
        outcomes = []
        for p in sorted(self._entries(self.outcomes)):
            raw = self._read_json(p) or {}
            outcomes.append({k: raw.get(k) for k in ("upload_id", "ref", "status", "reason")})
        dead = []
        for p in sorted(self._entries(self.dead)):
            raw = self._read_json(p) or {}
            dead.append({k: raw.get(k) for k in ("upload_id", "ref", "attempts", "refusals", "last_error",
                                                 "dead_reason")})
        pending_deliveries = retrying = refused = 0
        for p in self._entries(self.pending):
            raw = self._read_json(p) or {}
            pending_deliveries += 1
            retrying += bool(raw.get("attempts"))
            refused += bool(raw.get("refusals"))
        ignored: dict[str, int] = {}
        for p in self._entries(self.ignored):
            reason = (self._read_json(p) or {}).get("reason") or "unknown"
            ignored[reason] = ignored.get(reason, 0) + 1
        return {
            "spool_dir": str(self.root),
            "running": self.running(),
            # What the gateway still owes: instances to upload, results to deliver, dead letters to resend.
            "spool_depth": len(inbox) + pending_deliveries + len(dead),
            "pending_uploads": len(inbox),
            "pending_upload_bytes": size,
            "uploaded": sum(1 for _ in self._entries(self.uploaded)),
            "pending_deliveries": pending_deliveries,
            "delivered": sum(1 for _ in self._entries(self.done)),
            # Pending deliveries that failed at least once, and those among them the PACS refused.
            "deliveries_retrying": retrying,
            "deliveries_refused": refused,
            "dead_letters": len(dead),
            "dead_letters_refused": sum(1 for d in dead if d["dead_reason"] == "refused"),
            "dead_letters_max_age": sum(1 for d in dead if d["dead_reason"] == "max_age"),
            "rejections_and_failures": len(outcomes),
            # Acknowledged, never uploaded: not radiographs, or our own results sent back (by reason).
            "ignored": sum(ignored.values()),
            "ignored_by_reason": dict(sorted(ignored.items())),
            "dead": dead,
            "outcomes": outcomes,
        }
