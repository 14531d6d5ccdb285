"""Spooled instances -> ``incoming/<hospital_id>/<ref>.dcm`` in the upload bucket, each exactly once.

Exactly once, whatever crashes: the put is conditional (``If-None-Match: *``), so a put repeated
after a crash between "S3 stored it" and "the ledger says so" is refused with 412 instead of making
a second object version (the service keys its records by version: a second version would be
assessed twice). The ledger entry (key, version, upload_id, the source's UIDs) is written before
the spooled bytes are dropped. While S3 is unreachable the uploader waits with capped, jittered
back-off and never gives an instance up.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from boneage.gateway.config import GatewayConfig
from boneage.gateway.retry import backoff_s
from boneage.gateway.spool import Spool
from boneage.upload import upload_id_for

logger = logging.getLogger("boneage.gateway.uploader")

_SOURCE_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def source_uids(path: Any) -> dict[str, str | None]:
    """The source's UIDs, for the local mapping from upload to study (never logged, never sent)."""
    try:
        ds = dcmread(path, stop_before_pixels=True, force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return dict.fromkeys(_SOURCE_UIDS)
    return {k: (str(ds.get(k)) if ds.get(k) else None) for k in _SOURCE_UIDS}


class Uploader:
    def __init__(self, config: GatewayConfig, spool: Spool, s3: Any, *, sleep: Callable[[float], Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.spool = spool
        self.s3 = s3
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.stop_batch = threading.Event()
        self._sleep = sleep
        self.clock = clock
        self.failures = 0          # consecutive failed puts (drives the back-off)

    def key_for(self, ref: str) -> str:
        return f"{self.config.upload_prefix}{ref}.dcm"

    def upload(self, ref: str) -> str:
        """Upload one spooled instance; returns "uploaded" or "already-there". Raises on a fault."""
        path = self.spool.inbox_path(ref)
        data = path.read_bytes()
        key = self.key_for(ref)
        uids = source_uids(path)
        try:
            put = self.s3.put_object(Bucket=self.config.aws.upload_bucket, Key=key, Body=data,
                                     ContentType="application/dicom", IfNoneMatch="*")
            version = put.get("VersionId")
            outcome = "uploaded"
        except Exception as exc:
            if _error_code(exc) not in ("PreconditionFailed", "412"):
                raise
            # Our own earlier put (a crash came before the ledger entry): the object is there, once.
            version, outcome = None, "already-there"
        upload_id = upload_id_for(self.config.aws.upload_bucket, key, version) if version else None
        self.spool.mark_uploaded(ref, {
            "key": key, "version_id": version, "upload_id": upload_id, "bytes": len(data),
            "received_at": path.stat().st_mtime if path.exists() else None, "uploaded_at": self.clock(),
            "study_instance_uid": uids["StudyInstanceUID"], "series_instance_uid": uids["SeriesInstanceUID"],
            "sop_instance_uid": uids["SOPInstanceUID"], "sop_class_uid": uids["SOPClassUID"],
        })
        logger.info("instance uploaded" if outcome == "uploaded" else "instance was already uploaded",
                    extra={"ref": ref, "upload_id": upload_id, "bytes": len(data)})
        return outcome

    def run_once(self) -> int:
        """Upload everything spooled now, ``upload_concurrency`` at a time (each put is a WAN round trip);
        returns how many went. Raises the first fault once the puts under way have ended."""
        refs = self.spool.inbox_refs()
        workers = max(1, min(self.config.upload_concurrency, len(refs)))
        if workers == 1:
            for ref in refs:
                if self.stop.is_set():
                    break
                self.upload(ref)
            return len(refs)
        done, fault = 0, None
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gateway-put") as pool:
            futures = [pool.submit(self._upload_unless_stopped, ref) for ref in refs]
            for future in futures:
                try:
                    done += future.result()
                except Exception as exc:
                    fault = fault or exc
                    self.stop_batch.set()       # S3 is probably down: stop starting puts, back off
        self.stop_batch.clear()
        if fault is not None:
            raise fault
        return done

    def _upload_unless_stopped(self, ref: str) -> int:
        if self.stop.is_set() or self.stop_batch.is_set():
            return 0
        self.upload(ref)
        return 1

    def run(self) -> None:
        while not self.stop.is_set():
            self.wake.clear()
            try:
                self.run_once()
                self.failures = 0
            except Exception as exc:
                self.failures += 1
                delay = backoff_s(self.failures, self.config.retry)
                logger.warning("upload failed; retrying", extra={"fault": type(exc).__name__,
                                                                 "code": _error_code(exc),
                                                                 "attempt": self.failures, "retry_in_s": round(delay, 2)})
                self._wait(delay)
                continue
            self._wait(1.0, wakeable=True)

    def _wait(self, seconds: float, *, wakeable: bool = False) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
            return
        if wakeable:
            self.wake.wait(seconds)
        else:
            self.stop.wait(seconds)


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = error.get("Code")
        return str(code) if code is not None else None
    return None
