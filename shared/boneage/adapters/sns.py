"""Publish one SNS message per result, with the attributes hospitals filter on.

Message attributes: ``hospital_id`` (each hospital's clinicians subscribe with a filter policy on it),
``status``, ``interpretation`` (the flag, or ``none``) and ``upload_id`` (so a subscriber can drop the
rare duplicate: SNS and our retries are at-least-once). The body comes from
``boneage.notification.compose``; it never carries names, patient IDs or birth dates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boneage.adapters._errors import dependency
from boneage.notification import compose
from boneage.result import AssessmentResult


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


def build_message(result: AssessmentResult, *, hospital_id: str, upload_id: str,
                  report_url: str | None, report_url_expires_in_s: int | None = None) -> OutgoingMessage:
    """The SNS message for one result: compose()'s wording plus the routing attributes we own."""
    note = compose(result, report_url, hospital_id=hospital_id, report_url_expires_in_s=report_url_expires_in_s)
    attributes = _string_attributes(note.attributes)
    # Routing attributes are ours; they override whatever the composer suggested.
    attributes.update(
        hospital_id=hospital_id,
        status=result.status,
        interpretation=result.interpretation or "none",
        upload_id=upload_id,
    )
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
