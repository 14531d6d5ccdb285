"""In-memory implementations of the upload use case's ports (``boneage.ports``), for its tests.

They keep the semantics of the AWS adapters, not just their signatures: the store's claim is
conditional and leased, only the claim's owner finishes, a ``failed`` record can be claimed again, the
notification has its own lease; the object reader rejects a missing version or one over the size
limit with the adapter's reason codes. ``tests/unit/handler/test_port_contracts.py`` runs the same
assertions against these and against the adapters on the emulator, so the two cannot drift apart.

Each fake can be broken on purpose: name an operation in its ``down`` set and it raises the
``TransientFault`` the adapter raises for an unavailable dependency (the best-effort releases do
nothing instead, as the adapters swallow their errors). Nothing here touches a socket.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime

from boneage.errors import Reason, Rejection, TransientFault
from boneage.notification import OutgoingMessage
from boneage.result import COMPLETED, FAILED, REJECTED, AssessmentResult
from boneage.upload import PROCESSING, UNKNOWN_HOSPITAL_ID, Claim, FetchedObject, StoredRecord, Upload


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeClock:
    """A clock the test moves: ``clock()`` is the time now, ``advance`` moves it on."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _Breakable:
    dependency = ""

    def __init__(self) -> None:
        self.down: set[str] = set()         # operation names that fail, or "*" for all of them

    def _check(self, operation: str) -> None:
        if operation in self.down or "*" in self.down:
            raise TransientFault(f"{self.dependency} unavailable: {operation}")


@dataclasses.dataclass(frozen=True)
class _Version:
    version_id: str
    data: bytes
    metadata: dict[str, str]
    content_type: str | None


class InMemoryObjects(_Breakable):
    """``ObjectReader``: a versioned bucket in a dict."""

    dependency = "s3"

    def __init__(self, *, max_bytes: int = 200 * 1024 * 1024) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self._versions: dict[tuple[str, str], list[_Version]] = {}
        self._ids = itertools.count(1)
        self.fetches = 0

    def put(self, bucket: str, key: str, data: bytes, metadata: Mapping[str, str] | None = None,
            content_type: str | None = None) -> str:
        """Store a new version; returns its id. Metadata keys are lower-cased, as S3 does."""
        version = _Version(f"v{next(self._ids)}", data, {k.lower(): v for k, v in (metadata or {}).items()},
                           content_type)
        self._versions.setdefault((bucket, key), []).append(version)
        return version.version_id

    def delete(self, bucket: str, key: str) -> None:
        self._versions.pop((bucket, key), None)

    def current_version(self, bucket: str, key: str) -> str | None:
        self._check("current_version")
        versions = self._versions.get((bucket, key))
        return versions[-1].version_id if versions else None

    def fetch(self, bucket: str, key: str, version_id: str | None) -> FetchedObject:
        self._check("fetch")
        self.fetches += 1
        versions = self._versions.get((bucket, key)) or []
        found = [v for v in versions if version_id is None or v.version_id == version_id][-1:]
        if not found:
            raise Rejection(Reason.OBJECT_NOT_FOUND, "the uploaded object (or this version of it) no longer exists")
        [version] = found
        if len(version.data) > self.max_bytes:
            raise Rejection(Reason.TOO_LARGE,
                            f"the upload is {len(version.data)} bytes; the limit is {self.max_bytes} bytes")
        return FetchedObject(data=version.data, version_id=version.version_id, metadata=dict(version.metadata),
                             content_type=version.content_type)


class InMemoryResultStore(_Breakable):
    """``ResultStore``: one record per upload in a dict, every write conditional as in DynamoDB.

    A lock makes each operation atomic, as a single conditional DynamoDB write is, so concurrent
    deliveries race here as they do against the table."""

    dependency = "dynamodb"

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, StoredRecord] = {}
        self._tokens: dict[str, str] = {}       # upload_id -> token of the delivery holding the claim
        self._lock = threading.Lock()

    def read(self, upload_id: str) -> StoredRecord | None:
        return self._records.get(upload_id)

    @property
    def records(self) -> list[StoredRecord]:
        return list(self._records.values())

    def stuck(self, *, now: float, older_than_s: int, limit: int) -> list[StoredRecord]:
        self._check("stuck")
        with self._lock:
            found = [r for r in self._records.values() if r.status == PROCESSING and r.lease_until is not None
                     and r.lease_until < int(now) - older_than_s]
        return sorted(found, key=lambda r: r.lease_until or 0)[:limit]

    def claim(self, upload: Upload, hospital_id: str | None, *, now: float, lease_seconds: int) -> Claim:
        self._check("claim")
        with self._lock:
            existing = self._records.get(upload.upload_id)
            free = (existing is None or existing.status == FAILED
                    or (existing.status == PROCESSING and existing.lease_until is not None
                        and existing.lease_until < int(now)))
            if not free:
                assert existing is not None
                return Claim(owned=False, record=existing)
            base = existing or StoredRecord(upload_id=upload.upload_id, hospital_id="", status="",
                                            created_at=_iso(now))
            record = dataclasses.replace(
                base, status=PROCESSING, result=None, lease_until=int(now) + lease_seconds, updated_at=_iso(now),
                attempts=base.attempts + 1, hospital_id=hospital_id or UNKNOWN_HOSPITAL_ID,
                bucket=upload.bucket, key=upload.key, version_id=upload.version_id or "null")
            token = secrets.token_hex(8)
            self._records[upload.upload_id], self._tokens[upload.upload_id] = record, token
            return Claim(owned=True, record=record, token=token)

    def finish(self, claim: Claim, result: AssessmentResult, *, now: float,
               report_keys: Mapping[str, str] | None = None, notify_lease_seconds: int = 0) -> StoredRecord | None:
        self._check("finish")
        upload_id = claim.record.upload_id
        with self._lock:
            if not claim.token or self._tokens.get(upload_id) != claim.token:
                return None
            # The record is rebuilt from the claim's, as the table's PutItem does; the stored result
            # carries no source name (the record says which upload it is).
            stored = dataclasses.replace(result, source=f"upload:{upload_id}")
            record = dataclasses.replace(
                claim.record, status=result.status, result=stored, updated_at=_iso(now),
                report_keys=dict(report_keys or {}), lease_until=None,
                notify_lease_until=int(now) + notify_lease_seconds if notify_lease_seconds
                else claim.record.notify_lease_until)
            self._records[upload_id] = record
            del self._tokens[upload_id]
            return record

    def release(self, claim: Claim) -> None:
        if "release" in self.down or "*" in self.down:
            return
        upload_id = claim.record.upload_id
        with self._lock:
            if claim.token and self._tokens.get(upload_id) == claim.token:
                self._records[upload_id] = dataclasses.replace(self._records[upload_id], lease_until=0)

    def record_failure(self, upload: Upload, hospital_id: str | None, *, fault: str, now: float,
                       model_version: str = "") -> StoredRecord | None:
        self._check("record_failure")
        with self._lock:
            existing = self._records.get(upload.upload_id)
            if existing is not None and not (
                    existing.status == FAILED
                    or (existing.status == PROCESSING
                        and (existing.lease_until is None or existing.lease_until < int(now)))):
                return None
            base = existing or StoredRecord(upload_id=upload.upload_id, hospital_id="", status="",
                                            created_at=_iso(now))
            result = AssessmentResult(
                source=f"upload:{upload.upload_id}", status=FAILED, reason="processing_failed",
                message=f"assessment failed after retries ({fault}); the upload can be redriven",
                model_version=model_version)
            record = dataclasses.replace(
                base, status=FAILED, result=result, updated_at=_iso(now),
                hospital_id=hospital_id or UNKNOWN_HOSPITAL_ID, lease_until=None, bucket=upload.bucket, key=upload.key, version_id=upload.version_id or "null")
            self._records[upload.upload_id] = record
            self._tokens.pop(upload.upload_id, None)
            return record

    def claim_notification(self, upload_id: str, status: str, *, now: float, lease_seconds: int) -> bool:
        self._check("claim_notification")
        with self._lock:
            record = self._records.get(upload_id)
            if (record is None or record.status != status or record.notified_status == status
                    or (record.notify_lease_until is not None and record.notify_lease_until >= int(now))):
                return False
            self._records[upload_id] = dataclasses.replace(record, notify_lease_until=int(now) + lease_seconds)
            return True

    def release_notification(self, upload_id: str) -> None:
        if "release_notification" in self.down or "*" in self.down:
            return
        with self._lock:
            if upload_id in self._records:
                self._records[upload_id] = dataclasses.replace(self._records[upload_id], notify_lease_until=0)

    def mark_notified(self, upload_id: str, status: str, *, now: float) -> bool:
        self._check("mark_notified")
        with self._lock:
            record = self._records.get(upload_id)
            if record is None or record.status != status:
                return False
            self._records[upload_id] = dataclasses.replace(record, notified_status=status, notified_at=_iso(now),
                                                           notify_lease_until=None)
            return True


class InMemoryReports(_Breakable):
    """``ReportWriter``: report files in a dict, under the adapter's PHI-free keys."""

    dependency = "s3"

    def __init__(self, *, prefix: str = "reports/", url_expiry_s: int = 3600) -> None:
        super().__init__()
        self.prefix = prefix
        self.url_expiry_s = url_expiry_s
        self.files: dict[str, bytes] = {}

    def write(self, hospital_id: str, upload_id: str, files: Mapping[str, bytes]) -> dict[str, str]:
        self._check("write")
        keys = {name: f"{self.prefix}{hospital_id}/{upload_id[:16]}/{name}" for name in sorted(files)}
        for name, key in keys.items():
            self.files[key] = files[name]
        return keys

    def url(self, key: str) -> str:
        return f"https://reports.invalid/{key}?expires-in={self.url_expiry_s}"


class RecordingPublisher(_Breakable):
    """``Publisher``: keeps every message it is given."""

    dependency = "sns"

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[OutgoingMessage] = []
        self._lock = threading.Lock()

    def publish(self, message: OutgoingMessage) -> str:
        self._check("publish")
        with self._lock:
            self.messages.append(message)
            return f"message-{len(self.messages)}"


class FakeAssessmentService:
    """``AssessmentService`` without a model: the bytes decide the outcome.

    ``IMG...`` is an image (completed, a bone age from the bytes, sex from the metadata, three report
    files); ``CRASH...`` makes the model raise, alone or in a batch; anything else is rejected
    ``not_an_image``. ``fail`` makes every assessment raise, ``fail_batches`` every batch of more than
    one. ``calls`` lists the names assessed by each call, so a test sees how the use case batched them.
    """

    model_version = "fake-model"

    def __init__(self, *, fail: bool = False, fail_batches: bool = False) -> None:
        self.fail = fail
        self.fail_batches = fail_batches
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def assess(self, data: bytes, *, source: str, metadata: Mapping[str, str] | None = None,
               want_reports: bool = True) -> tuple[AssessmentResult, dict[str, bytes]]:
        return self.assess_many([(data, source, metadata)], want_reports=want_reports)[0]

    def assess_many(self, items: list[tuple[bytes, str, Mapping[str, str] | None]], *,
                    want_reports: bool = True) -> list[tuple[AssessmentResult, dict[str, bytes]]]:
        with self._lock:
            self.calls.append([name for _, name, _ in items])
        if self.fail or (self.fail_batches and len(items) > 1) or any(d.startswith(b"CRASH") for d, _, _ in items):
            raise RuntimeError("injected model fault")
        return [self._one(data, name, metadata or {}, want_reports) for data, name, metadata in items]

    def _one(self, data: bytes, name: str, metadata: Mapping[str, str],
             want_reports: bool) -> tuple[AssessmentResult, dict[str, bytes]]:
        if not data.startswith(b"IMG"):
            return AssessmentResult(source=name, status=REJECTED, reason=Reason.NOT_AN_IMAGE,
                                    message="the upload is not an image", model_version=self.model_version), {}
        months = 24.0 + sum(data) % 150
        result = AssessmentResult(
            source=name, status=COMPLETED, bone_age_months=months, bone_age_interval_months=[months - 9, months + 9],
            sex=metadata.get("sex"), study_reference=metadata.get("study-ref"), interpretation="within_normal_limits",
            model_version=self.model_version, report_files=["report.png", "report_sc.dcm", "report_sr.dcm"])
        files = {n: f"{n}:{name}".encode() for n in result.report_files} if want_reports else {}
        return result, files


class InMemoryUploaderRegistry(_Breakable):
    """``UploaderRegistry``: hospital id -> the principal unique ids its onboarding registered."""

    dependency = "ssm"

    def __init__(self, entries: Mapping[str, set[str] | frozenset[str]] | None = None) -> None:
        super().__init__()
        self.entries = {h: frozenset(p) for h, p in (entries or {}).items()}
        self.lookups: list[tuple[str, bool]] = []

    def principals(self, hospital_id: str, *, fresh: bool = False) -> frozenset[str] | None:
        self._check("principals")
        self.lookups.append((hospital_id, fresh))
        return self.entries.get(hospital_id)
