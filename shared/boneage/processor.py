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
- a delivery killed on its last attempt (timeout, out of memory) runs no Python: ``finalize`` (the
  finalizer function on the dead-letter queue) and ``sweep`` (its schedule) write the ``failed`` record
  and its one notification instead; the deadline check keeps most uploads from being killed at all.

**Who put the upload.** With an ``UploaderRegistry`` (the function always has one: the onboarding stacks'
SSM parameters), an upload under ``incoming/<H>/`` is assessed only when the principal the S3 event names
(``userIdentity.principalId``, ``AWS:<RoleId>:<session>`` for an assumed role) is registered for ``H``.
Otherwise it is never read: the record is ``rejected`` with ``uploader_mismatch`` under the hospital
``_unknown`` (no hospital id can match that filter, so ``H``'s queue and e-mail never hear of it), and a
warning with the upload id, the folder's hospital and the principal's unique id (no key, no PHI) tells the
operator. A hospital with no registry entry is ``unknown_hospital``. The IAM policies of the onboarding
stack already keep a hospital's role out of other folders; this check is the second line, for a
mis-scoped policy, a bucket policy that grants too much, or an operator's put.

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
from boneage.ports import AssessmentService, ObjectReader, Publisher, ReportWriter, ResultStore, UploaderRegistry
from boneage.result import FAILED, REJECTED, AssessmentResult
from boneage.upload import (
    PROCESSING,
    TERMINAL,
    UNKNOWN_HOSPITAL_ID,
    Claim,
    FetchedObject,
    StoredRecord,
    Upload,
    object_ref_for,
    principal_unique_id,
)

logger = logging.getLogger(__name__)

# Outcome beyond the record statuses: what happened to this delivery.
DUPLICATE = "duplicate"             # the upload already has a terminal, notified record


class InProgress(TransientFault):
    """Another delivery holds a live claim on the upload: retry later, when it has finished (or died)."""


class DeadlineNear(TransientFault):
    """Too little of the invocation is left to assess the upload and persist its result: retry it
    rather than be killed by the function timeout halfway through a write."""


# What the finalizer and the sweep record as the fault: they never saw one raised.
DEAD_LETTERED = "every delivery ended without a result: timeout, out of memory or a crash"
LEFT_PROCESSING = "left processing past its lease"


@dataclass(frozen=True)
class SweepReport:
    stuck: int = 0                  # records found `processing` past their lease and the grace period
    finalized: int = 0              # of those, now terminal and notified by this sweep


@dataclass(frozen=True)
class Outcome:
    upload_id: str
    hospital_id: str
    outcome: str                    # completed | rejected | failed | duplicate
    notified: bool = False
    reason: str | None = None       # a rejection's reason code, when this delivery finished the upload


@dataclass
class _Job:
    """One claimed upload on its way through ``process_many``."""

    upload: Upload
    attempt: int
    hospital_id: str | None = None
    claim: Claim | None = None
    fetched: FetchedObject | None = None
    result: AssessmentResult | None = None      # set early for a rejection before the model (no image)
    refusal: Rejection | None = None            # the uploader check's verdict, applied instead of fetching
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
                 uploaders: UploaderRegistry | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.objects = objects
        self.service = service
        self.store = store
        self.reports = reports
        self.publisher = publisher
        self.uploaders = uploaders          # None: nobody checks who put an upload (use-case tests only)
        self.clock = clock

    # -- the flow --------------------------------------------------------------------------------
    def process(self, upload: Upload, *, attempt: int = 1) -> Outcome:
        """One upload; a fault is raised (after releasing the claim, and recording ``failed`` on the last attempt)."""
        [outcome] = self.process_many([upload], [attempt])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def process_many(self, uploads: Sequence[Upload], attempts: Sequence[int], *,
                     remaining_s: Callable[[], float] | None = None) -> list[Outcome | Exception]:
        """The uploads of one invocation, the model run once over all that need it.

        Returns one entry per upload, in order: its ``Outcome``, or the fault that must fail its delivery
        (already logged, the claim released, ``failed`` recorded on the last attempt). The same upload
        twice is worked on once; the copy gets ``duplicate``, or the same fault.

        ``remaining_s`` says how many seconds the invocation has left (the handler's deadline). The
        model, report and persist stage of an upload is started only with ``settings.assess_budget_s``
        left for it; an upload without that time fails with ``DeadlineNear`` (retried, ``failed`` on
        the last attempt) instead of being killed by the timeout halfway through its writes.
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
                self._check_uploader(job)
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
                self._run_group(group, outcomes, remaining_s)
                group, held = {}, 0
            try:
                self._fetch(job)
            except Exception as exc:
                outcomes[i] = self._fault(job, exc)
                continue
            size = len(job.fetched.data) if job.fetched is not None else 0
            if group and held + size > limit:
                self._run_group(group, outcomes, remaining_s)
                group, held = {}, 0
            group[i], held = job, held + size
        if group:
            self._run_group(group, outcomes, remaining_s)

        for i, j in copies.items():
            done = outcomes[j]
            assert done is not None
            outcomes[i] = done if isinstance(done, Exception) else dataclasses.replace(done, outcome=DUPLICATE,
                                                                                        notified=False)
        return outcomes  # type: ignore[return-value]    # every entry is set by now

    def _run_group(self, group: dict[int, _Job], outcomes: list[Outcome | Exception | None],
                   remaining_s: Callable[[], float] | None) -> None:
        """Assess fetched uploads together (time allowing), finish each, then let go of their bytes."""
        pending = [job for job in group.values() if job.result is None]
        if self._time_for(len(pending), remaining_s):
            self._assess_together(pending)
        for i, job in group.items():
            try:
                if job.result is None:      # alone, or the batched step failed: assess this one by itself
                    if not self._time_for(1, remaining_s):
                        raise DeadlineNear("too little time left before the function timeout to assess the upload")
                    data, name, metadata = job.item
                    job.result, job.files = self.service.assess(data, source=name, metadata=metadata)
                outcomes[i] = self._finish(job)
            except Exception as exc:
                outcomes[i] = self._fault(job, exc)
            finally:
                job.fetched, job.files = None, {}

    def give_up(self, upload: Upload, exc: BaseException, *, quarantined: bool = False) -> StoredRecord | None:
        """Record ``failed`` and notify it (best effort: if this fails too, the redrive script does it).
        ``quarantined``: the uploader check refused it, so the record stays off the folder's hospital."""
        hospital_id = None if quarantined else upload.hospital_id(self.settings.input_prefix)
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

    def finalize(self, upload: Upload, *, fault: str = DEAD_LETTERED) -> Outcome:
        """The last word on an upload whose deliveries are all spent (its event reached the dead-letter
        queue): make sure it has a terminal record and that record's notification went out once.

        A delivery killed by the timeout or the memory limit leaves the record ``processing`` (or none
        at all) and nobody notified. ``failed`` is written where the record is missing or ``processing``
        with an expired lease (``record_failure``'s condition: a result that stands, or a live claim, is
        never overwritten), and a terminal record not yet notified is notified through the notification
        claim, so a repeated call sends nothing more. A ``failed`` record stays claimable, so a later
        redrive can still complete the upload. ``InProgress`` (retry later) while another delivery
        holds a live claim or is publishing the notification.
        """
        return self._settle(self._pinned(upload), fault=fault)

    def sweep(self, *, stuck_after_s: int, limit: int = 100) -> SweepReport:
        """Finalize the records left ``processing`` more than ``stuck_after_s`` past their lease.

        A delivery that dies leaves its lease to expire; the event is redelivered (and re-claimed)
        within one visibility timeout, or reaches the dead-letter queue and the finalizer. A record
        still ``processing`` after that lost its event (a redrive killed mid-way, a finalizer that kept
        failing until the dead-letter queue dropped the event): it is counted, for the alarm, and
        settled like a dead-lettered one."""
        stuck = self.store.stuck(now=self.clock(), older_than_s=stuck_after_s, limit=limit)
        finalized = 0
        for record in stuck:
            upload = Upload(record.bucket, record.key, None if record.version_id == "null" else record.version_id)
            try:
                self._settle(upload, fault=LEFT_PROCESSING)
                finalized += 1
            except Exception as exc:     # the next sweep tries again; the alarm has already counted it
                logger.warning("could not finalize a stuck upload", extra={"upload_id": record.upload_id,
                                                                           "fault": fault_label(exc)})
        if stuck:
            logger.error("uploads left processing past their lease", extra={"stuck": len(stuck),
                                                                             "finalized": finalized})
        return SweepReport(stuck=len(stuck), finalized=finalized)

    # -- steps -----------------------------------------------------------------------------------
    def _time_for(self, uploads: int, remaining_s: Callable[[], float] | None) -> bool:
        return uploads == 0 or remaining_s is None or remaining_s() >= uploads * self.settings.assess_budget_s

    def _settle(self, upload: Upload, *, fault: str) -> Outcome:
        hospital_id = upload.hospital_id(self.settings.input_prefix)
        record = self.store.read(upload.upload_id)
        if record is None or record.status == PROCESSING:
            record = (self.store.record_failure(upload, hospital_id, fault=fault, now=self.clock(),
                                                model_version=self.service.model_version)
                      or self.store.read(upload.upload_id))
        if record is None or record.status == PROCESSING:
            raise InProgress("another delivery holds a live claim on this upload")
        if record.notified:
            return Outcome(upload.upload_id, record.hospital_id, DUPLICATE)
        if not self._notify(record):
            raise InProgress("another delivery is sending this upload's notification")
        logger.error("upload finalized", extra={"upload_id": upload.upload_id, "hospital_id": record.hospital_id,
                                                "status": record.status, "fault": fault})
        return Outcome(upload.upload_id, record.hospital_id, record.status, notified=True)

    def _pinned(self, upload: Upload) -> Upload:
        if upload.version_id is not None:
            return upload
        # S3 names the version in events from versioned buckets; emulators and hand-made events may
        # not. Pin the version now so the idempotency key and the bytes we read agree.
        return dataclasses.replace(upload, version_id=self.objects.current_version(upload.bucket, upload.key))

    def _check_uploader(self, job: _Job) -> None:
        """Refuse an upload whose putter is not registered for the folder's hospital (see the module doc).

        Only an onboarded hospital's folder is checked here; a key outside ``incoming/<hospital_id>/`` or a
        hospital not allowed is ``unknown_hospital`` in ``_fetch`` as before. A cached entry that does not
        admit the principal is read again before refusing: the verdict is final (``rejected``)."""
        hospital = job.hospital_id
        if self.uploaders is None or hospital is None or (self.settings.allowed_hospitals
                                                          and hospital not in self.settings.allowed_hospitals):
            return
        principal = principal_unique_id(job.upload.principal_id)
        allowed = self.uploaders.principals(hospital)
        if allowed is not None and principal in allowed:
            return
        allowed = self.uploaders.principals(hospital, fresh=True)
        if allowed is None:
            job.refusal = Rejection(Reason.UNKNOWN_HOSPITAL, f"hospital {hospital} is not onboarded: no uploader "
                                                            "is registered for its folder")
        elif principal not in allowed:
            logger.warning("upload refused: its uploader is not registered for the folder's hospital",
                           extra={**job.log, "principal": principal or "none", "reason": Reason.UPLOADER_MISMATCH})
            job.refusal = Rejection(Reason.UPLOADER_MISMATCH, "the object was put by a principal that is not "
                                    "registered for the hospital whose folder it is in, or the "
                                    "upload event named no principal; it was not read")
            job.hospital_id = None      # recorded and notified under _unknown: never to the folder's hospital

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
            if job.refusal is not None:
                raise job.refusal
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
        return Outcome(job.upload.upload_id, job.hospital, job.result.status, notified=True, reason=job.result.reason)

    def _fault(self, job: _Job, exc: Exception) -> Exception:
        logger.warning("upload fault", extra={**job.log, "fault": fault_label(exc)})
        if job.claim is not None and job.claim.owned:
            self.store.release(job.claim)       # so the retry need not wait for the lease to expire
        if job.attempt >= self.settings.max_receive_count:
            self.give_up(job.upload, exc, quarantined=job.refusal is not None
                         and job.refusal.reason == Reason.UPLOADER_MISMATCH)
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
                                report_url_expires_in_s=self.reports.url_expiry_s if url else None,
                                object_ref=object_ref_for(record.bucket, record.key) if record.key else None,
                                report_keys=record.report_keys)
        try:
            self.publisher.publish(message)
        except Exception:
            self.store.release_notification(record.upload_id)
            raise
        self.store.mark_notified(record.upload_id, result.status, now=self.clock())
        return True
