"""Pending deliveries -> the PACS: the SC and SR of each completed assessment, into the source's study.

The SC and SR already carry the source's StudyInstanceUID (``boneage.report``: a new series of the
source study), so sending them as they are files them with the radiograph. Each file is fetched
once from the results bucket into the spool (its SOP Instance UID marked as our own first, so that the
listener never uploads it when the PACS sends the study back), then sent with C-STORE (``CStoreSender``)
or DICOMweb STOW-RS (``StowSender``). A file the PACS acknowledged is recorded as sent at once, so a retry sends
only what is missing; a delivery is moved to ``done`` when both went, and never sent again. A
failure (PACS down, refusal) is retried with capped, jittered back-off; after
``max_delivery_attempts`` the delivery moves to the dead-letter folder, with a log line naming the
command that re-sends it.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pydicom import dcmread

from boneage.gateway.config import GatewayConfig
from boneage.gateway.retry import backoff_s
from boneage.gateway.spool import Delivery, Spool, ref_for

logger = logging.getLogger("boneage.gateway.delivery")

# C-STORE statuses that mean "stored": success and the three warnings (coercion, elements discarded,
# data set does not match the SOP class) - Part 4 B.2.3.
STORED = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


class DeliveryError(Exception):
    """The PACS did not take a file; ``code`` is a short PHI-free label for logs and the spool."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Sender(Protocol):
    def send(self, paths: list[Path]) -> list[Path]:
        """Send the files; return those the PACS stored (in order) or raise ``DeliveryError`` when none
        went. A partial success returns the stored ones and raises nothing; the caller retries the rest."""
        ...


class CStoreSender:
    """C-STORE SCU to ``pacs``: one association per delivery, a context per file's SOP class and its
    own transfer syntax (nothing is transcoded)."""

    def __init__(self, config: GatewayConfig, *, timeout_s: float = 30.0) -> None:
        assert config.pacs is not None
        self.config = config
        self.pacs = config.pacs
        self.timeout_s = timeout_s

    def send(self, paths: list[Path]) -> list[Path]:
        from pynetdicom import AE

        ae = AE(ae_title=self.config.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = self.timeout_s
        headers = {p: dcmread(p, stop_before_pixels=True) for p in paths}
        for ds in headers.values():
            ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        assoc = ae.associate(self.pacs.host, self.pacs.port, ae_title=self.pacs.ae_title)
        if not assoc.is_established:
            if assoc.is_rejected:
                raise DeliveryError("association_rejected")
            # pynetdicom aborts an association in which the PACS accepted none of the contexts.
            raise DeliveryError("presentation_context_not_accepted" if assoc.rejected_contexts
                                else "pacs_unreachable")
        accepted = {(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
        stored: list[Path] = []
        try:
            for path in paths:
                ds = headers[path]
                if (ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) not in accepted:
                    # Nothing is transcoded: a PACS that refuses the SC's JPEG-LS, say, needs its settings changed.
                    if not stored:
                        raise DeliveryError("presentation_context_not_accepted")
                    break
                status = assoc.send_c_store(path)
                code = int(status.Status) if "Status" in status else None
                if code not in STORED:
                    if not stored:
                        raise DeliveryError("no_response" if code is None else f"cstore_status_0x{code:04X}")
                    break
                stored.append(path)
        finally:
            assoc.release()
        return stored


class StowSender:
    """DICOMweb STOW-RS: one multipart/related POST of every file to ``stow_url``."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def send(self, paths: list[Path]) -> list[Path]:
        boundary = uuid.uuid4().hex
        body = b""
        for path in paths:
            body += (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode() + path.read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                if response.status not in (200, 202):
                    raise DeliveryError(f"stow_http_{response.status}")
                reply = response.read()
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"stow_http_{exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError("pacs_unreachable") from exc
        # PS3.18 10.5.3: a 200/202 may still list instances it did not store (Failed SOP Sequence).
        try:
            failed = json.loads(reply or b"{}").get("00081198", {}).get("Value") or []
        except (ValueError, AttributeError):
            failed = []
        if failed:
            raise DeliveryError("stow_failed_sop")
        return list(paths)


def _sop_instance_uid(data: bytes) -> str | None:
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True, specific_tags=["SOPInstanceUID"])
    except Exception:
        return None
    return str(ds.get("SOPInstanceUID", "") or "").strip() or None


def make_sender(config: GatewayConfig) -> Sender | None:
    if config.pacs is not None:
        return CStoreSender(config)
    if config.stow_url is not None:
        return StowSender(config.stow_url)
    return None


class Deliverer:
    def __init__(self, config: GatewayConfig, spool: Spool, s3: Any, sender: Sender | None, *,
                 clock: Callable[[], float] = time.time, config_path: str = "PATH") -> None:
        self.config = config
        self.spool = spool
        self.s3 = s3
        self.sender = sender
        self.clock = clock
        self.config_path = config_path
        self.wake = threading.Event()
        self.stop = threading.Event()

    def _fetch(self, delivery: Delivery) -> list[Path]:
        folder = self.spool.delivery_dir(delivery.upload_id)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, key in sorted(delivery.report_keys.items()):
            path = folder / name
            if not path.exists():
                try:
                    body = self.s3.get_object(Bucket=self.config.aws.results_bucket, Key=key)["Body"].read()
                except Exception as exc:
                    raise DeliveryError(f"results_bucket_{type(exc).__name__}") from exc
                # Known as ours before it can reach the PACS: a study sent back from there is not re-assessed.
                sop_uid = _sop_instance_uid(body)
                if sop_uid:
                    self.spool.mark_own_result(ref_for(sop_uid))
                self.spool.write_atomic(path, body)
            paths.append(path)
        return paths

    def attempt(self, delivery: Delivery) -> bool:
        """One try at one delivery; True when it is complete. Records the outcome in the spool."""
        log = {"upload_id": delivery.upload_id, "ref": delivery.ref}
        try:
            if self.sender is None:
                raise DeliveryError("no_destination_configured")
            paths = [p for p in self._fetch(delivery) if p.name not in delivery.sent]
            stored = self.sender.send(paths) if paths else []
            for path in stored:
                delivery.sent.append(path.name)
            if len(stored) < len(paths):
                self.spool.save_delivery(delivery)
                raise DeliveryError("partially_stored")
        except DeliveryError as exc:
            return self._failed(delivery, exc.code, log)
        except Exception as exc:            # anything else is a fault of this attempt, retried the same way
            return self._failed(delivery, type(exc).__name__, log)
        delivery.last_error = None
        self.spool.finish_delivery(delivery, dead=False)
        logger.info("result delivered to the PACS", extra={**log, "files": len(delivery.sent)})
        return True

    def _failed(self, delivery: Delivery, code: str, log: dict[str, Any]) -> bool:
        delivery.attempts += 1
        delivery.last_error = code
        if delivery.attempts >= self.config.retry.max_delivery_attempts:
            self.spool.finish_delivery(delivery, dead=True)
            logger.error(f"delivery dead-lettered after {delivery.attempts} attempts; when the PACS is back run "
                         f"`boneage gateway resend --config {self.config_path}`",
                         extra={**log, "attempts": delivery.attempts, "error": code})
            return False
        delay = backoff_s(delivery.attempts, self.config.retry)
        delivery.next_attempt_at = self.clock() + delay
        self.spool.save_delivery(delivery)
        logger.warning("delivery failed; retrying", extra={**log, "attempt": delivery.attempts, "error": code,
                                                          "retry_in_s": round(delay, 2)})
        return False

    def run_once(self) -> float:
        """Try every delivery that is due; returns seconds until the next one is (at most 1)."""
        now = self.clock()
        wait = 1.0
        for delivery in self.spool.pending_deliveries():
            if self.stop.is_set():
                break
            if delivery.next_attempt_at <= now:
                self.attempt(delivery)
            else:
                wait = min(wait, delivery.next_attempt_at - now)
        return max(wait, 0.01)

    def run(self) -> None:
        while not self.stop.is_set():
            self.wake.clear()
            try:
                wait = self.run_once()
            except Exception as exc:        # the spool itself failed: keep going, loudly
                logger.error("delivery loop fault", extra={"fault": type(exc).__name__})
                wait = 1.0
            self.wake.wait(wait)
