"""S3 upload events, as they reach the function: an S3 notification, possibly wrapped in an SQS message.

Parsing is strict about shape and lenient about content: an ``s3:TestEvent`` (what S3 sends when a
notification is configured) or a non-creation event yields no uploads instead of an error, so the
queue never fills with poison messages. Keys arrive URL-encoded with ``+`` for spaces
(``unquote_plus``), which is why nothing downstream may use the raw key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from boneage.config import HOSPITAL_ID_PATTERN


@dataclass(frozen=True)
class Upload:
    """One object a hospital uploaded; ``upload_id`` is the idempotency key of everything we write."""

    bucket: str
    key: str                    # decoded
    version_id: str | None      # None only for buckets without versioning
    size: int | None = None
    event_time: str | None = None

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


def upload_id_for(bucket: str, key: str, version_id: str | None) -> str:
    """A stable, PHI-free id: the same object version always maps to the same record."""
    return hashlib.sha256(f"{bucket}/{key}/{version_id or 'null'}".encode()).hexdigest()[:32]


def uploads_from_s3_event(event: Mapping[str, Any]) -> Iterator[Upload]:
    """The object-created records of an S3 notification (raw S3->Lambda shape or an SQS body)."""
    if event.get("Event") == "s3:TestEvent":
        return
    for record in event.get("Records") or []:
        if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record["s3"]
        obj = s3["object"]
        yield Upload(
            bucket=s3["bucket"]["name"],
            key=unquote_plus(obj["key"]),
            version_id=obj.get("versionId") or None,
            size=obj.get("size"),
            event_time=record.get("eventTime"),
        )


def uploads_from_sqs_body(body: str) -> list[Upload]:
    """The uploads in one SQS message body; a body that is not an S3 notification yields none."""
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        return []
    if not isinstance(payload, dict):
        return []
    return list(uploads_from_s3_event(payload))
