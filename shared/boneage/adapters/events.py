"""S3 upload events, as they reach the function: an S3 notification, possibly wrapped in an SQS message.

Parsing is strict about shape and lenient about content: an ``s3:TestEvent`` (what S3 sends when a
notification is configured) or a non-creation event yields no uploads instead of an error, so the
queue never fills with poison messages. Keys arrive URL-encoded with ``+`` for spaces
(``unquote_plus``), which is why nothing downstream may use the raw key. ``userIdentity.principalId``
(who put the object) is kept for the uploader check (``boneage.processor``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote_plus

from boneage.upload import Upload


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
            principal_id=_principal(record),
        )


def _principal(record: Mapping[str, Any]) -> str | None:
    """``userIdentity.principalId``: who put the object (``AWS:<RoleId>:<session>`` for an assumed role)."""
    identity = record.get("userIdentity")
    value = identity.get("principalId") if isinstance(identity, Mapping) else None
    return value if isinstance(value, str) and value else None


def uploads_from_sqs_body(body: str) -> list[Upload]:
    """The uploads in one SQS message body; a body that is not an S3 notification yields none."""
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        return []
    if not isinstance(payload, dict):
        return []
    return list(uploads_from_s3_event(payload))
