"""The upload use case: claim -> fetch -> assess -> store reports -> write record -> notify.

This is the handler's logic, free of the Lambda event shape and of AWS: it talks to its ports
(``boneage.ports``), which ``boneage.adapters.runtime.build_processor`` fills with the AWS adapters and
the use-case tests with the in-memory fakes of ``boneage.fakes``. The handler, the redrive script and
the tests share it. ``process_many`` does the same for the uploads of one invocation (an SQS batch, a
multi-record S3 event): each is claimed, fetched, stored and notified on its own, but the model runs
once over all of them (``assess_many``), or over each group of at most ``ingest.max_batch_bytes``
when they are large, so memory stays bounded whatever the batch size; if that shared step raises,
each upload is assessed alone, so one bad upload cannot fail the others. Guarantees, per object version (``upload_id``):

- exactly one record, because every write is conditional on the claim (see ``ports.ResultStore``);
- one notification per terminal status, because ``notified_status`` is checked before publishing;
- a fault (``TransientFault``, a dependency's error, the model raising) propagates so the delivery is
  retried; on the last attempt (``attempt >= max_receive_count``) a ``failed`` record is written first,
  then the message goes to the dead-letter queue, from which ``scripts/redrive.py`` reprocesses it.

Logs go to the standard logger ``boneage.processor``; in the function, Powertools' ``boneage`` logger
(``functions/assess/app.py``) formats them as JSON with their ``upload_id``, ``hospital_id``,
``attempt`` and ``fault`` fields. Object keys never reach a log: they may carry PHI.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from boneage.config import Settings
from boneage.errors import Reason, Rejection, TransientFault
from boneage.notification import build_message
from boneage.ports import AssessmentService, ObjectReader, Publisher, ReportWriter, ResultStore
from boneage.result import FAILED, REJECTED, AssessmentResult
from boneage.upload import TERMINAL, UNKNOWN_HOSPITAL_ID, Claim, FetchedObject, StoredRecord, Upload

logger = logging.getLogger(__name__)

# Outcome beyond the record statuses: what happened to this delivery.
DUPLICATE = "duplicate"             # the upload already has a terminal, notified record


class InProgress(TransientFault):
    """Another delivery holds a live claim on the upload: retry later, when it has finished (or died)."""


@dataclass(frozen=True)
class Outcome:
    upload_id: str
    hospital_id: str
    outcome: str                    # completed | rejected | failed | duplicate
    notified: bool = False


@dataclass
class _Job:
    """One claimed upload on its way through ``process_many``."""

    upload: Upload
    attempt: int
    hospital_id: str | None = None
    claim: Claim | None = None
    fetched: FetchedObject | None = None
    result: AssessmentResult | None = None      # set early for a rejection before the model (no image)
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def hospital(self) -> str:
        return self.hospital_id or UNKNOWN_HOSPITAL_ID

    @property
    def name(self) -> str:
        """What the result calls its source: no key, no file name (PHI)."""
        return f"upload:{self.upload.upload_id}{self.upload.extension}"

    @property
    def item(self) -> tuple[bytes, str, Mapping[str, str] | None]:
        """What the service assesses: the bytes, a PHI-free name, the hospital's metadata."""
        assert self.fetched is not None
        return self.fetched.data, self.name, self.fetched.metadata

    @property
    def log(self) -> dict[str, Any]:
        return {"upload_id": self.upload.upload_id, "hospital_id": self.hospital, "attempt": self.attempt}


def fault_label(exc: BaseException) -> str:
    """A PHI-free description of a fault for records and logs: our messages, or just the exception type."""
    if isinstance(exc, TransientFault):
        return str(exc)[:200]
    return type(exc).__name__


class UploadProcessor:
    def __init__(self, *, settings: Settings, objects: ObjectReader, service: AssessmentService,
                 store: ResultStore, reports: ReportWriter, publisher: Publisher,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.objects = objects
        self.service = service
        self.store = store
        self.reports = reports
        self.publisher = publisher
        self.clock = clock

    # -- the flow --------------------------------------------------------------------------------
    def process(self, upload: Upload, *, attempt: int = 1) -> Outcome:
        """One upload; a fault is raised (after releasing the claim, and recording ``failed`` on the last attempt)."""
        [outcome] = self.process_many([upload], [attempt])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def process_many(self, uploads: Sequence[Upload], attempts: Sequence[int]) -> list[Outcome | Exception]:
        """The uploads of one invocation, the model run once over all that need it.

        Returns one entry per upload, in order: its ``Outcome``, or the fault that must fail its delivery
        (already logged, the claim released, ``failed`` recorded on the last attempt). The same upload
        twice is worked on once; the copy gets ``duplicate``, or the same fault.
        """
        outcomes: list[Outcome | Exception | None] = [None] * len(uploads)
        jobs: dict[int, _Job] = {}
        first: dict[str, int] = {}          # upload_id -> index of the entry that does the work
        copies: dict[int, int] = {}
        for i, (upload, attempt) in enumerate(zip(uploads, attempts, strict=True)):
            try:
                upload = self._pinned(upload)
            except Exception as exc:
                logger.warning("upload fault", extra={"attempt": attempt, "fault": fault_label(exc)})
                outcomes[i] = exc
                continue
            if upload.upload_id in first:
                copies[i] = first[upload.upload_id]
                continue
            first[upload.upload_id] = i
            job = _Job(upload, attempt, hospital_id=upload.hospital_id(self.settings.input_prefix))
            try:
                outcomes[i] = self._claim(job)
                if outcomes[i] is None:
                    jobs[i] = job
            except Exception as exc:
                outcomes[i] = self._fault(job, exc)

        # Fetched and assessed in groups of at most ``max_batch_bytes``: by the size the event gives
        # before fetching, by the bytes read when it gives none (then one more file may be held).
        limit = self.settings.ingest.max_batch_bytes
        group: dict[int, _Job] = {}
        held = 0
        for i, job in jobs.items():
            if group and job.upload.size is not None and held + job.upload.size > limit:
                self._run_group(group, outcomes)
                group, held = {}, 0
            try:
                self._fetch(job)
            except Exception as exc:
                outcomes[i] = self._fault(job, exc)
                continue
            size = len(job.fetched.data) if job.fetched is not None else 0
            if group and held + size > limit:
                self._run_group(group, outcomes)
                group, held = {}, 0
            group[i], held = job, held + size
        if group:
            self._run_group(group, outcomes)

        for i, j in copies.items():
            done = outcomes[j]
            assert done is not None
            outcomes[i] = done if isinstance(done, Exception) else dataclasses.replace(done, outcome=DUPLICATE,
                                                                                        notified=False)
        return outcomes  # type: ignore[return-value]    # every entry is set by now

    def _run_group(self, group: dict[int, _Job], outcomes: list[Outcome | Exception | None]) -> None:
        """Assess fetched uploads together, finish each, then let go of their bytes."""
        self._assess_together([job for job in group.values() if job.result is None])
        for i, job in group.items():
            try:
                if job.result is None:      # alone, or the batched step failed: assess this one by itself
                    data, name, metadata = job.item
                    job.result, job.files = self.service.assess(data, source=name, metadata=metadata)
                outcomes[i] = self._finish(job)
            except Exception as exc:
                outcomes[i] = self._fault(job, exc)
            finally:
                job.fetched, job.files = None, {}

    def give_up(self, upload: Upload, exc: BaseException) -> StoredRecord | None:
        """Record ``failed`` and notify it (best effort: if this fails too, the redrive script does it)."""
        hospital_id = upload.hospital_id(self.settings.input_prefix)
        try:
            record = self.store.record_failure(upload, hospital_id, fault=fault_label(exc), now=self.clock(),
                                               model_version=self.service.model_version)
            if record is None:
                # A result already stands (only its notification failed) or another delivery holds a
                # live claim: nothing to mark; the dead-lettered event lets the redrive finish the job.
                logger.error("retries exhausted; record left as it is", extra={"upload_id": upload.upload_id,
                                                                               "fault": fault_label(exc)})
                return None
            if record.notified_status != FAILED:
                self._notify(record)
            logger.error("upload failed after retries", extra={"upload_id": upload.upload_id,
                                                                "fault": fault_label(exc)})
            return record
        except Exception as inner:     # the original fault is what the caller re-raises
            logger.error("could not record the failure", extra={"upload_id": upload.upload_id,
                                                                 "fault": fault_label(inner)})
            return None

    # -- steps -----------------------------------------------------------------------------------
    def _pinned(self, upload: Upload) -> Upload:
        if upload.version_id is not None:
            return upload
        # S3 names the version in events from versioned buckets; emulators and hand-made events may
        # not. Pin the version now so the idempotency key and the bytes we read agree.
        return dataclasses.replace(upload, version_id=self.objects.current_version(upload.bucket, upload.key))

    def _claim(self, job: _Job) -> Outcome | None:
        """None when this delivery now owns the upload; otherwise what the earlier delivery left."""
        job.claim = self.store.claim(job.upload, job.hospital_id, now=self.clock(),
                                     lease_seconds=self.settings.lease_seconds)
        if not job.claim.owned:
            return self._already_handled(job.upload, job.hospital, job.claim, job.log)
        logger.info("claimed upload", extra=job.log)
        return None

    def _fetch(self, job: _Job) -> None:
        """The object's bytes, or a ``rejected`` result when there is nothing to assess."""
        try:
            if job.hospital_id is None or (self.settings.allowed_hospitals
                                           and job.hospital_id not in self.settings.allowed_hospitals):
                raise Rejection(Reason.UNKNOWN_HOSPITAL,
                                f"uploads must go under {self.settings.input_prefix}<hospital_id>/ "
                                "for a hospital this service knows")
            job.fetched = self.objects.fetch(job.upload.bucket, job.upload.key, job.upload.version_id)
        except Rejection as rejection:
            job.result = AssessmentResult(source=job.name, status=REJECTED, reason=rejection.reason,
                                          message=rejection.message, model_version=self.service.model_version)

    def _assess_together(self, jobs: list[_Job]) -> None:
        """One model batch for several uploads; on a fault, leave them to be assessed one by one."""
        if len(jobs) < 2:
            return
        try:
            assessed = self.service.assess_many([job.item for job in jobs])
        except Exception as exc:
            # Which upload caused it is unknown: assessing each alone gives every one its own outcome.
            logger.warning("batched assessment failed; assessing the uploads one by one",
                           extra={"uploads": len(jobs), "fault": fault_label(exc)})
            return
        for job, (result, files) in zip(jobs, assessed, strict=True):
            job.result, job.files = result, files

    def _finish(self, job: _Job) -> Outcome:
        assert job.claim is not None and job.result is not None
        keys = self.reports.write(job.hospital_id, job.upload.upload_id, job.files) if job.files else {}
        record = self.store.finish(job.claim, job.result, now=self.clock(), report_keys=keys,
                                   notify_lease_seconds=self.settings.lease_seconds)
        if record is None:
            job.claim = None            # not ours any more: nothing to release
            raise InProgress("the claim expired and another delivery took the upload over")
        self._notify(record, lease_held=True)
        logger.info("upload finished", extra={**job.log, "status": job.result.status, "reason": job.result.reason})
        return Outcome(job.upload.upload_id, job.hospital, job.result.status, notified=True)

    def _fault(self, job: _Job, exc: Exception) -> Exception:
        logger.warning("upload fault", extra={**job.log, "fault": fault_label(exc)})
        if job.claim is not None and job.claim.owned:
            self.store.release(job.claim)       # so the retry need not wait for the lease to expire
        if job.attempt >= self.settings.max_receive_count:
            self.give_up(job.upload, exc)
        return exc

    def _already_handled(self, upload: Upload, hospital: str, claim: Claim, log: dict[str, Any]) -> Outcome:
        if claim.status in TERMINAL:
            if not claim.record.notified:
                # A previous delivery wrote the record but crashed before (or while) publishing, or is
                # publishing right now: the notification claim lets exactly one of us send it.
                if not self._notify(claim.record):
                    raise InProgress("another delivery is sending this upload's notification")
                logger.info("sent the missing notification", extra={**log, "status": claim.status})
                return Outcome(upload.upload_id, hospital, claim.status, notified=True)
            logger.info("duplicate delivery ignored", extra={**log, "status": claim.status})
            return Outcome(upload.upload_id, hospital, DUPLICATE)
        # Not ours and not finished: fail this delivery so it is retried and then sees the result.
        raise InProgress("another delivery is processing this upload")

    def _notify(self, record: StoredRecord, *, lease_held: bool = False) -> bool:
        """Publish the record's notification once; False when another delivery holds the right to.
        ``lease_held``: the write that finished the record took the notification lease already."""
        result = record.result
        assert result is not None, "only a terminal record is notified"
        if not lease_held and not self.store.claim_notification(record.upload_id, result.status, now=self.clock(),
                                                                lease_seconds=self.settings.lease_seconds):
            return False
        report_key = record.report_keys.get("report.png")
        url = self.reports.url(report_key) if report_key else None
        message = build_message(result, hospital_id=record.hospital_id, upload_id=record.upload_id, report_url=url,
                                report_url_expires_in_s=self.reports.url_expiry_s if url else None)
        try:
            self.publisher.publish(message)
        except Exception:
            self.store.release_notification(record.upload_id)
            raise
        self.store.mark_notified(record.upload_id, result.status, now=self.clock())
        return True
