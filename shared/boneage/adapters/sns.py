"""Publish one SNS message per result, with the attributes hospitals filter on.

Message attributes: ``hospital_id`` (each hospital's clinicians subscribe with a filter policy on it),
``status``, ``interpretation`` (the flag, or ``none``) and ``upload_id`` (so a subscriber can drop the
rare duplicate: SNS and our retries are at-least-once). The message, attributes included, comes from
``boneage.notification.build_message``; it never carries names, patient IDs or birth dates, the
e-mail part carries no study identifiers or findings either, and it always fits SNS's 256 KB limit.
"""

from __future__ import annotations

from typing import Any

from boneage.adapters._errors import dependency
from boneage.notification import OutgoingMessage


class Publisher:
    """``boneage.ports.Publisher`` on an SNS topic."""

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
