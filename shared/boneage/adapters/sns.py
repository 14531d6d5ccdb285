"""Publish one SNS message per result, with the attributes hospitals filter on.

Message attributes: ``hospital_id`` (each hospital's clinicians subscribe with a filter policy on it),
``status``, ``interpretation`` (the flag, or ``none``) and ``upload_id`` (so a subscriber can drop the
rare duplicate: SNS and our retries are at-least-once). The body comes from
``boneage.notification.compose``; it never carries names, patient IDs or birth dates, and the
e-mail part carries no study identifiers or findings either (see that module). ``build_message``
keeps every message under SNS's 256 KB publish limit, whatever the result's fields hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boneage.adapters._errors import dependency
from boneage.notification import SNS_MAX_PUBLISH_BYTES, SUBJECT_MAX, compose
from boneage.result import AssessmentResult
from boneage.safetext import clean, clip

ATTRIBUTE_MAX_CHARS = 256           # our attribute values are short ids and codes; bound them anyway
SAFETY_MARGIN_BYTES = 4096          # for SNS's own accounting of the structure


@dataclass(frozen=True)
class OutgoingMessage:
    subject: str
    message: str                    # the SNS message (MessageStructure="json" when ``structured``)
    attributes: dict[str, str]
    structured: bool = False


def _string_attributes(raw: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (raw or {}).items():
        if isinstance(value, Mapping):          # already in SNS shape
            value = value.get("StringValue")
        if value is not None and str(value) != "":
            out[str(name)] = str(value)
    return out


def publish_size(message: OutgoingMessage) -> int:
    """What SNS counts against its 256 KB publish limit: the message, the subject and the attributes."""
    size = len(message.message.encode()) + len(message.subject.encode())
    for name, value in message.attributes.items():
        size += len(name.encode()) + len(value.encode()) + len("String")
    return size


def build_message(result: AssessmentResult, *, hospital_id: str, upload_id: str,
                  report_url: str | None, report_url_expires_in_s: int | None = None) -> OutgoingMessage:
    """The SNS message for one result: compose()'s wording plus the routing attributes we own, sized
    so that SNS accepts it whatever the result's fields hold (a refused publish would never succeed)."""
    # Routing attributes are ours; they override whatever the composer suggested.
    ours = {"hospital_id": clean(hospital_id), "status": clean(result.status),
            "interpretation": clean(result.interpretation or "none"), "upload_id": clean(upload_id)}
    ours = {k: clip(v, ATTRIBUTE_MAX_CHARS) for k, v in ours.items()}
    overhead = SUBJECT_MAX + sum(len(k.encode()) + len(v.encode()) + len("String") for k, v in ours.items())
    note = compose(result, report_url, upload_id=upload_id, hospital_id=hospital_id,
                   report_url_expires_in_s=report_url_expires_in_s,
                   budget_bytes=SNS_MAX_PUBLISH_BYTES - overhead - SAFETY_MARGIN_BYTES)
    attributes = _string_attributes(note.attributes)
    attributes.update(ours)
    return OutgoingMessage(subject=note.subject, message=note.sns_message, attributes=attributes, structured=True)


class Publisher:
    def __init__(self, sns_client: Any, topic_arn: str) -> None:
        self._sns = sns_client
        self.topic_arn = topic_arn

    def publish(self, message: OutgoingMessage) -> str:
        kwargs: dict[str, Any] = {}
        if message.structured:
            kwargs["MessageStructure"] = "json"
        with dependency("sns"):
            resp = self._sns.publish(
                TopicArn=self.topic_arn,
                Subject=message.subject[:100],      # SNS limit; ASCII only, no line breaks
                Message=message.message,
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in message.attributes.items()},
                **kwargs,
            )
        return str(resp.get("MessageId", ""))
