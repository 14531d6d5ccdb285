"""One upload, end to end on AWS: claim -> fetch -> assess -> store reports -> write record -> notify.

This is the handler's logic, free of the Lambda event shape so the handler, the redrive script and the
tests share it. Guarantees, per object version (``upload_id``):

- exactly one record, because every write is conditional on the claim (see ``store``);
- one notification per terminal status, because ``notified_status`` is checked before publishing;
- a fault (``TransientFault``, a dependency's error, the model raising) propagates so the delivery is
  retried; on the last attempt (``attempt >= max_receive_count``) a ``failed`` record is written first,
  then the message goes to the dead-letter queue, from which ``scripts/redrive.py`` reprocesses it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from boneage.adapters.events import Upload
from boneage.adapters.reports import ReportWriter
from boneage.adapters.s3 import ObjectSource
from boneage.adapters.sns import Publisher, build_message
from boneage.adapters.store import FAILED, TERMINAL, UNKNOWN_HOSPITAL_ID, Claim, ResultStore, result_from_item
from boneage.config import Settings
from boneage.errors import Reason, Rejection, TransientFault
from boneage.result import REJECTED, AssessmentResult

logger = Logger(service="boneage", child=True)

# Outcome beyond the record statuses: what happened to this delivery.
DUPLICATE = "duplicate"             # the upload already has a terminal, notified record


class InProgress(TransientFault):
    """Another delivery holds a live claim on the upload: retry later, when it has finished (or died)."""


class Service(Protocol):
    model_version: str

    def assess(self, data: bytes, *, source: str, metadata: Mapping[str, str] | None = None,
               want_reports: bool = True) -> tuple[AssessmentResult, dict[str, bytes]]: ...


@dataclass(frozen=True)
class Outcome:
    upload_id: str
    hospital_id: str
    outcome: str                    # completed | rejected | failed | duplicate
    notified: bool = False


def fault_label(exc: BaseException) -> str:
    """A PHI-free description of a fault for records and logs: our messages, or just the exception type."""
    if isinstance(exc, TransientFault):
        return str(exc)[:200]
    return type(exc).__name__


class UploadProcessor:
    def __init__(self, *, settings: Settings, source: ObjectSource, service: Service, store: ResultStore,
                 reports: ReportWriter, publisher: Publisher, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.source = source
        self.service = service
        self.store = store
        self.reports = reports
        self.publisher = publisher
        self.clock = clock

    # -- the flow --------------------------------------------------------------------------------
    def process(self, upload: Upload, *, attempt: int = 1) -> Outcome:
        if upload.version_id is None:
            # S3 names the version in events from versioned buckets; emulators and hand-made events may
            # not. Pin the version now so the idempotency key and the bytes we read agree.
            upload = dataclasses.replace(upload, version_id=self.source.current_version(upload.bucket, upload.key))
        hospital_id = upload.hospital_id(self.settings.input_prefix)
        hospital = hospital_id or UNKNOWN_HOSPITAL_ID
        log = {"upload_id": upload.upload_id, "hospital_id": hospital, "attempt": attempt}
        claim: Claim | None = None
        try:
            claim = self.store.claim(upload, hospital_id, now=self.clock(),
                                     lease_seconds=self.settings.lease_seconds)
            if not claim.owned:
                return self._already_handled(upload, hospital, claim, log)
            logger.info("claimed upload", extra=log)
            result, report_keys = self._assess(upload, hospital_id)
            item = self.store.finish(claim, result, now=self.clock(), report_keys=report_keys)
            if item is None:
                claim = None
                raise InProgress("the claim expired and another delivery took the upload over")
            self._notify(item)
            logger.info("upload finished", extra={**log, "status": result.status, "reason": result.reason})
            return Outcome(upload.upload_id, hospital, result.status, notified=True)
        except Exception as exc:
            logger.warning("upload fault", extra={**log, "fault": fault_label(exc)})
            if claim is not None and claim.owned:
                self.store.release(claim)       # so the retry need not wait for the lease to expire
            if attempt >= self.settings.max_receive_count:
                self.give_up(upload, exc)
            raise

    def give_up(self, upload: Upload, exc: BaseException) -> dict[str, Any] | None:
        """Record ``failed`` and notify it (best effort: if this fails too, the redrive script does it)."""
        hospital_id = upload.hospital_id(self.settings.input_prefix)
        try:
            item = self.store.record_failure(upload, hospital_id, fault=fault_label(exc), now=self.clock(),
                                             model_version=getattr(self.service, "model_version", ""))
            if item is None:
                # A result already stands (only its notification failed) or another delivery holds a
                # live claim: nothing to mark; the dead-lettered event lets the redrive finish the job.
                logger.error("retries exhausted; record left as it is", extra={"upload_id": upload.upload_id,
                                                                               "fault": fault_label(exc)})
                return None
            if item.get("notified_status") != FAILED:
                self._notify(item)
            logger.error("upload failed after retries", extra={"upload_id": upload.upload_id,
                                                                "fault": fault_label(exc)})
            return item
        except Exception as inner:     # the original fault is what the caller re-raises
            logger.error("could not record the failure", extra={"upload_id": upload.upload_id,
                                                                 "fault": fault_label(inner)})
            return None

    # -- steps -----------------------------------------------------------------------------------
    def _already_handled(self, upload: Upload, hospital: str, claim: Claim, log: dict[str, Any]) -> Outcome:
        item = claim.item
        if claim.status in TERMINAL:
            if item.get("notified_status") != claim.status:
                # A previous delivery wrote the record but crashed before (or while) publishing, or is
                # publishing right now: the notification claim lets exactly one of us send it.
                if not self._notify(item):
                    raise InProgress("another delivery is sending this upload's notification")
                logger.info("sent the missing notification", extra={**log, "status": claim.status})
                return Outcome(upload.upload_id, hospital, claim.status, notified=True)
            logger.info("duplicate delivery ignored", extra={**log, "status": claim.status})
            return Outcome(upload.upload_id, hospital, DUPLICATE)
        # Not ours and not finished: fail this delivery so it is retried and then sees the result.
        raise InProgress("another delivery is processing this upload")

    def _assess(self, upload: Upload, hospital_id: str | None) -> tuple[AssessmentResult, dict[str, str]]:
        source = f"upload:{upload.upload_id}{upload.extension}"    # no key, no file name: those may carry PHI
        try:
            if hospital_id is None or (self.settings.allowed_hospitals
                                       and hospital_id not in self.settings.allowed_hospitals):
                raise Rejection(Reason.UNKNOWN_HOSPITAL,
                                f"uploads must go under {self.settings.input_prefix}<hospital_id>/ "
                                "for a hospital this service knows")
            fetched = self.source.fetch(upload.bucket, upload.key, upload.version_id)
        except Rejection as rejection:
            result = AssessmentResult(source=source, status=REJECTED, reason=rejection.reason,
                                      message=rejection.message,
                                      model_version=getattr(self.service, "model_version", ""))
            return result, {}
        result, files = self.service.assess(fetched.data, source=source, metadata=fetched.metadata)
        keys = self.reports.write(hospital_id, upload.upload_id, files) if files else {}
        return result, keys

    def _notify(self, item: Mapping[str, Any]) -> bool:
        """Publish the item's notification once; False when another delivery holds the right to."""
        upload_id = str(item["upload_id"])
        result = result_from_item(item)
        if not self.store.claim_notification(upload_id, result.status, now=self.clock(),
                                             lease_seconds=self.settings.lease_seconds):
            return False
        report_key = (item.get("report_keys") or {}).get("report.png")
        url = self.reports.url(report_key) if report_key else None
        message = build_message(result, hospital_id=str(item.get("hospital_id", UNKNOWN_HOSPITAL_ID)),
                                upload_id=str(item["upload_id"]), report_url=url,
                                report_url_expires_in_s=self.reports.url_expiry_s if url else None)
        try:
            self.publisher.publish(message)
        except Exception:
            self.store.release_notification(upload_id)
            raise
        self.store.mark_notified(upload_id, result.status, now=self.clock())
        return True
