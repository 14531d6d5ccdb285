"""An upload and what the results table keeps about it, as the upload use case sees them (no boto3).

- ``Upload``: one object version a hospital put under ``incoming/<hospital_id>/``; its ``upload_id``
  (``sha256(bucket/key/version)[:32]``) is the idempotency key of everything written for it.
- ``FetchedObject``: that version's bytes and the hospital's user metadata.
- ``StoredRecord``: the one record per upload, typed; ``adapters/store.py`` maps it to and from a
  DynamoDB item, ``boneage.fakes`` keeps it in memory.
- ``Claim``: what taking an upload for a delivery found (owned now, or another delivery's record).
- ``RecordQuery`` / ``RecordPage``: one page of a hospital's records (the results API reads them).

Record life cycle (``status``)::

    (none) --claim--> processing --finish--> completed | rejected
                          |  \\--last attempt fails / redrive gives up--> failed --claim (redrive)--> processing
                          \\--lease expires (crash, timeout)--> may be claimed again; on the last delivery
                               the finalizer (dead-letter queue) or the sweep writes failed
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from boneage.config import HOSPITAL_ID_PATTERN
from boneage.result import COMPLETED, FAILED, REJECTED, AssessmentResult

PROCESSING = "processing"
TERMINAL = frozenset({COMPLETED, REJECTED, FAILED})
UNKNOWN_HOSPITAL_ID = "_unknown"        # the record's hospital for uploads outside incoming/<hospital_id>/


def upload_id_for(bucket: str, key: str, version_id: str | None) -> str:
    """A stable, PHI-free id: the same object version always maps to the same record."""
    return hashlib.sha256(f"{bucket}/{key}/{version_id or 'null'}".encode()).hexdigest()[:32]


def object_ref_for(bucket: str, key: str) -> str:
    """A PHI-free name of an object key, the same for all its versions: the machine notification carries
    it so that an uploader that chose the key (the DICOM gateway) can find its upload without the key."""
    return hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Upload:
    """One object a hospital uploaded; ``upload_id`` is the idempotency key of everything we write."""

    bucket: str
    key: str                    # decoded
    version_id: str | None      # None only for buckets without versioning
    size: int | None = None
    event_time: str | None = None
    principal_id: str | None = None     # who put it: the S3 event's userIdentity.principalId (None: not named)

    @property
    def upload_id(self) -> str:
        return upload_id_for(self.bucket, self.key, self.version_id)

    def hospital_id(self, input_prefix: str) -> str | None:
        """``incoming/<hospital_id>/<anything>`` -> hospital_id; None when the key does not follow it."""
        if not self.key.startswith(input_prefix):
            return None
        parts = self.key[len(input_prefix):].split("/", 1)
        if len(parts) != 2 or not parts[1] or not HOSPITAL_ID_PATTERN.match(parts[0]):
            return None
        return parts[0]

    @property
    def extension(self) -> str:
        """The file extension (lower case, with dot) or ""; kept because ingest may sniff on it."""
        name = self.key.rsplit("/", 1)[-1]
        if "." not in name:
            return ""
        ext = name.rsplit(".", 1)[-1].lower()
        return f".{ext}" if ext.isalnum() and len(ext) <= 5 else ""


def principal_unique_id(principal_id: str | None) -> str | None:
    """The IAM unique id in an S3 event's ``userIdentity.principalId``, which is what a hospital's
    registry entry lists: ``AWS:AROA...:session`` (an assumed role: its RoleId) -> ``AROA...``,
    ``AWS:AIDA...`` (an IAM user) -> ``AIDA...``. None when the event names no principal."""
    text = (principal_id or "").strip()
    if text.startswith("AWS:"):
        text = text[len("AWS:"):]
    unique = text.split(":", 1)[0]
    return unique or None


@dataclass(frozen=True)
class FetchedObject:
    data: bytes
    version_id: str | None
    metadata: dict[str, str]    # S3 user metadata, ``x-amz-meta-`` already stripped by S3, keys lower case
    content_type: str | None


@dataclass(frozen=True)
class StoredRecord:
    """The record of one upload (docs/serverless.md, "The result record").

    ``result`` is the stored assessment once the status is terminal (``failed``: the reason and the
    fault's message only), None while ``processing``. The object's location (``bucket``, ``key``,
    ``version_id``) is kept for the redrive and for people; nothing in the flow reads it.
    """

    upload_id: str
    hospital_id: str
    status: str
    result: AssessmentResult | None = None
    attempts: int = 0
    report_keys: Mapping[str, str] = field(default_factory=dict)    # file name -> key in the results bucket
    notified_status: str | None = None      # the status whose notification went out
    notified_at: str | None = None
    notify_lease_until: int | None = None   # while a delivery holds the right to publish (epoch seconds)
    lease_until: int | None = None          # while a delivery holds the claim (epoch seconds)
    created_at: str = ""
    updated_at: str = ""
    bucket: str = ""
    key: str = ""
    version_id: str = "null"                # as stored: "null" for an unversioned object

    @property
    def notified(self) -> bool:
        """The notification of the current status went out."""
        return self.notified_status == self.status


@dataclass(frozen=True)
class Claim:
    """What ``ResultStore.claim`` found: we own the upload now (``owned``, with the lease ``token``
    that ``finish`` and ``release`` need), or another delivery does or did (its ``record``)."""

    owned: bool
    record: StoredRecord
    token: str = ""

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def attempts(self) -> int:
        return self.record.attempts


class InvalidPageToken(ValueError):
    """A page token that is malformed or was issued for another hospital's query."""


@dataclass(frozen=True)
class RecordQuery:
    """Which of a hospital's records to list: filters (empty: any) and a page size.

    ``created_from`` / ``created_to`` compare with ``created_at`` as text (both ends inclusive), which
    orders like time because every ``created_at`` has the same ISO 8601 UTC shape."""

    statuses: frozenset[str] = frozenset()
    interpretations: frozenset[str] = frozenset()
    created_from: str | None = None
    created_to: str | None = None
    limit: int = 25

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 100:
            raise ValueError(f"limit must be between 1 and 100, got {self.limit}")


@dataclass(frozen=True)
class RecordPage:
    """Records newest first; ``next_token`` (opaque) fetches the page after this one, None at the end."""

    records: list[StoredRecord]
    next_token: str | None = None
