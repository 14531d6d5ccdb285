"""Pending deliveries -> the PACS: the SC and SR of each completed assessment, into the source's study.

The SC and SR already carry the source's StudyInstanceUID (``boneage.report``: a new series of the
source study), so sending them as they are files them with the radiograph. Each file is fetched
once from the results bucket into the spool (its SOP Instance UID marked as our own first, so that the
listener never uploads it when the PACS sends the study back), then sent with C-STORE (``CStoreSender``)
or DICOMweb STOW-RS (``StowSender``). A file the PACS acknowledged is recorded as sent at once, so a retry sends
only what is missing; a delivery is moved to ``done`` when both went, and never sent again.

A failure is retried with capped, jittered back-off, and its kind decides when to give up:

- a *transient* fault (PACS unreachable or timing out, association rejected-transient or aborted,
  C-STORE "out of resources" 0xA7xx / processing failure 0x0110, HTTP 5xx, 408, 429) says nothing
  about the result: a PACS down for a maintenance window must not dead-letter it. It is retried until
  the delivery has been failing for ``retry.max_delivery_age_s`` (72 h by default);
- a *refusal* (association rejected-permanent, no presentation context the PACS accepts even
  uncompressed, C-STORE failures such as 0xA9xx "does not match SOP class" or 0xCxxx "cannot
  understand", HTTP 4xx) will not go away by itself: after ``retry.max_delivery_attempts`` refusals
  (3 by default) the delivery is dead-lettered.

Either way the dead letter's log line names the command that re-sends it.

The SC is JPEG-LS lossless; many PACS accept only uncompressed syntaxes for Secondary Capture. The C-STORE
SCU proposes each SOP class with the file's own transfer syntax, Explicit VR Little Endian and Implicit VR
Little Endian (three contexts), and when only an uncompressed one is accepted it decompresses the file
(losslessly, checking the pixels are the ones decoded from the file) before sending. A lossy source is
never decompressed and re-labelled: that is a refusal.
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

from pydicom import Dataset, dcmread
from pydicom.uid import (UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                         JPEG2000Lossless, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless)

from boneage.gateway.config import GatewayConfig
from boneage.gateway.retry import backoff_s
from boneage.gateway.spool import Delivery, Spool, ref_for

logger = logging.getLogger("boneage.gateway.delivery")

# C-STORE statuses that mean "stored": success and the three warnings (coercion, elements discarded,
# data set does not match the SOP class) - Part 4 B.2.3.
STORED = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)     # in order of preference
# Syntaxes whose decoded pixels are exactly the encoded ones: only these are decompressed for a PACS
# that accepts nothing else (JPEGLosslessSV1 is "JPEG Lossless, first-order prediction").
LOSSLESS = frozenset({JPEGLSLossless, JPEGLosslessSV1, JPEGLossless, JPEG2000Lossless,
                      RLELossless, DeflatedExplicitVRLittleEndian})


class DeliveryError(Exception):
    """The PACS did not take a file; ``code`` is a short PHI-free label for logs and the spool.
    ``permanent``: the PACS refused it and retrying will not help; otherwise a transient fault."""

    def __init__(self, code: str, *, permanent: bool = False) -> None:
        super().__init__(code)
        self.code = code
        self.permanent = permanent


def cstore_status_is_transient(code: int | None) -> bool:
    """No response (timeout, abort), "out of resources" (0xA7xx, Part 4 B.2.3), "processing failure"
    (0x0110) or "resource limitation" (0x0213, Part 7 C): worth retrying. Every other failure (0xA9xx, 0xCxxx, 0x0122 SOP class not
    supported, 0x0124 not authorised...) is a refusal of this object."""
    return code is None or code & 0xFF00 == 0xA700 or code in (0x0110, 0x0213)


def http_status_is_transient(code: int) -> bool:
    return code >= 500 or code in (408, 429)


def _uncompressed(ds: Dataset, path: Path, transfer_syntax: UID) -> Dataset:
    """The file's data set, decompressed to ``transfer_syntax`` (Explicit or Implicit VR LE), with the
    same pixels as the file decodes to; a refusal for a lossy source."""
    source = UID(ds.file_meta.TransferSyntaxUID)
    if source not in UNCOMPRESSED and source not in LOSSLESS:
        # Decompressing a lossy encoding and sending it as the same instance would hide that it is lossy.
        raise DeliveryError("lossy_syntax_not_accepted" if source.is_compressed else "syntax_not_convertible",
                            permanent=True)
    full = dcmread(path)
    if "PixelData" in full and source.is_compressed:
        try:
            expected = full.pixel_array.copy()             # pydicom's decoder (numpy + pyjpegls), nothing else
        except (ImportError, RuntimeError) as exc:       # numpy or the decoder plugin not installed here
            raise DeliveryError("decoder_unavailable") from exc
        # The same instance in another transfer syntax (a lossless change keeps the SOP Instance UID, and
        # the gateway knows its own results by it); colour data stays in the space it was encoded in.
        full.decompress(as_rgb=False, generate_instance_uid=False)
        again = full.pixel_array                          # read back from the native bytes to be sent
        if again.shape != expected.shape or again.dtype != expected.dtype or not (again == expected).all():
            raise DeliveryError("decompressed_pixels_differ", permanent=True)
    full.file_meta.TransferSyntaxUID = transfer_syntax
    # What pynetdicom checks the file meta against: the encoding the data set is now to be sent in.
    full.set_original_encoding(transfer_syntax.is_implicit_VR, True, full.original_character_set)
    return full


class Sender(Protocol):
    def send(self, paths: list[Path]) -> list[Path]:
        """Send the files; return those the PACS stored (in order) or raise ``DeliveryError`` when none
        went. A partial success returns the stored ones and raises nothing; the caller retries the rest."""
        ...


class CStoreSender:
    """C-STORE SCU to ``pacs``: one association per delivery; for each file's SOP class three contexts,
    its own transfer syntax first, then Explicit and Implicit VR Little Endian, so that a PACS that takes
    only uncompressed data still gets the (losslessly decompressed) file."""

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
        proposed: set[tuple[str, str]] = set()
        for ds in headers.values():
            for ts in (ds.file_meta.TransferSyntaxUID, *UNCOMPRESSED):
                if (ds.SOPClassUID, ts) not in proposed:
                    proposed.add((ds.SOPClassUID, ts))
                    ae.add_requested_context(ds.SOPClassUID, ts)   # one syntax each: the PACS says yes or no to each
        assoc = ae.associate(self.pacs.host, self.pacs.port, ae_title=self.pacs.ae_title)
        if not assoc.is_established:
            if assoc.is_rejected:
                result = getattr(assoc.acceptor.primitive, "result", None)
                if result == 0x01:
                    raise DeliveryError("association_rejected_permanent", permanent=True)
                raise DeliveryError("association_rejected_transient")
            # pynetdicom aborts an association in which the PACS accepted none of the contexts.
            if assoc.rejected_contexts:
                raise DeliveryError("presentation_context_not_accepted", permanent=True)
            # Connection refused, timed out or aborted (pynetdicom reports all three as aborted): transient.
            raise DeliveryError("pacs_unreachable")
        accepted = {(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
        stored: list[Path] = []
        try:
            for path in paths:
                try:
                    status = assoc.send_c_store(self._dataset_for(path, headers[path], accepted))
                except DeliveryError:
                    if not stored:
                        raise
                    break
                code = int(status.Status) if "Status" in status else None
                if code not in STORED:
                    if not stored:
                        raise DeliveryError("no_response" if code is None else f"cstore_status_0x{code:04X}",
                                            permanent=not cstore_status_is_transient(code))
                    break
                stored.append(path)
        finally:
            assoc.release()
        return stored

    @staticmethod
    def _dataset_for(path: Path, ds: Dataset, accepted: set[tuple[str, str]]) -> Path | Dataset:
        """The file as it is when the PACS took its syntax, else decompressed to an accepted uncompressed one."""
        if (ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) in accepted:
            return path
        for ts in UNCOMPRESSED:
            if (ds.SOPClassUID, ts) in accepted:
                return _uncompressed(ds, path, ts)
        raise DeliveryError("presentation_context_not_accepted", permanent=True)


class StowSender:
    """DICOMweb STOW-RS: one multipart/related POST of every file to ``stow_url``, as they are; when the
    server answers 415 (a syntax it does not take), once more with the compressed files decompressed
    losslessly to Explicit VR Little Endian, each part labelled with its transfer-syntax parameter."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def send(self, paths: list[Path]) -> list[Path]:
        try:
            return self._post(paths, uncompressed=False)
        except DeliveryError as exc:
            if exc.code != "stow_http_415":
                raise
        return self._post(paths, uncompressed=True)

    @staticmethod
    def _part(path: Path, uncompressed: bool) -> tuple[str, bytes]:
        if not uncompressed:
            return "application/dicom", path.read_bytes()
        header = dcmread(path, stop_before_pixels=True)
        if not UID(header.file_meta.TransferSyntaxUID).is_compressed:
            return f"application/dicom; transfer-syntax={header.file_meta.TransferSyntaxUID}", path.read_bytes()
        buf = io.BytesIO()
        _uncompressed(header, path, ExplicitVRLittleEndian).save_as(buf, enforce_file_format=True)
        return f"application/dicom; transfer-syntax={ExplicitVRLittleEndian}", buf.getvalue()

    def _post(self, paths: list[Path], *, uncompressed: bool) -> list[Path]:
        boundary = uuid.uuid4().hex
        body = b""
        for path in paths:
            content_type, data = self._part(path, uncompressed)
            body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
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
            raise DeliveryError(f"stow_http_{exc.code}", permanent=not http_status_is_transient(exc.code)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError("pacs_unreachable") from exc
        # PS3.18 10.5.3: a 200/202 may still list instances it did not store (Failed SOP Sequence).
        try:
            failed = json.loads(reply or b"{}").get("00081198", {}).get("Value") or []
        except (ValueError, AttributeError):
            failed = []
        if failed:
            # Failure Reason (0008,1197) of each: "out of resources" (0xA7xx) is transient, the rest refusals.
            reasons = [((item.get("00081197") or {}).get("Value") or [None])[0] if isinstance(item, dict) else None
                       for item in failed]
            raise DeliveryError("stow_failed_sop", permanent=not any(
                isinstance(r, int) and cstore_status_is_transient(r) for r in reasons))
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
            if stored:
                delivery.failing_since = 0.0     # progress: the age limit counts from the last success
            if len(stored) < len(paths):
                self.spool.save_delivery(delivery)
                raise DeliveryError("partially_stored")      # the next attempt sends the rest and classifies its error
        except DeliveryError as exc:
            return self._failed(delivery, exc.code, exc.permanent, log)
        except Exception as exc:            # anything else is a fault of this attempt, retried the same way
            return self._failed(delivery, type(exc).__name__, False, log)
        delivery.last_error = None
        self.spool.finish_delivery(delivery, dead=False)
        logger.info("result delivered to the PACS", extra={**log, "files": len(delivery.sent)})
        return True

    def _failed(self, delivery: Delivery, code: str, permanent: bool, log: dict[str, Any]) -> bool:
        now = self.clock()
        retry = self.config.retry
        delivery.attempts += 1
        delivery.last_error = code
        delivery.failing_since = delivery.failing_since or now
        if permanent:
            delivery.refusals += 1
        failing_for = now - delivery.failing_since
        if delivery.refusals >= retry.max_delivery_attempts:
            delivery.dead_reason = "refused"
        elif not permanent and failing_for >= retry.max_delivery_age_s:
            delivery.dead_reason = "max_age"
        if delivery.dead_reason:
            self.spool.finish_delivery(delivery, dead=True)
            why = (f"refused by the PACS {delivery.refusals} times" if delivery.dead_reason == "refused"
                   else f"failing for {failing_for:.0f} s")
            logger.error(f"delivery dead-lettered ({why}); once the PACS is fixed run "
                         f"`boneage gateway resend --config {self.config_path}`",
                         extra={**log, "attempts": delivery.attempts, "refusals": delivery.refusals,
                                "error": code, "dead_reason": delivery.dead_reason})
            return False
        delay = backoff_s(delivery.attempts, retry)
        delivery.next_attempt_at = now + delay
        self.spool.save_delivery(delivery)
        logger.warning("delivery refused; retrying" if permanent else "delivery failed; retrying",
                       extra={**log, "attempt": delivery.attempts, "refusals": delivery.refusals, "error": code,
                              "permanent": permanent, "retry_in_s": round(delay, 2)})
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
