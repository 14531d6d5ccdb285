"""Reprocess uploads whose events landed in the dead-letter queue, once the fault is fixed
(``scripts/redrive.py`` is the command).

Each dead-lettered message holds the original S3 event. ``redrive`` runs every upload through the
function's own ``UploadProcessor`` as its last attempt: success overwrites a ``failed`` record with the
result (and notifies it once); a persisting fault writes or keeps the ``failed`` record, and the
message stays in the DLQ for the next redrive. ``move`` is for AWS, where the function should do the
work: it re-sends each message to the assessment queue and deletes it from the DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .events import uploads_from_sqs_body


@dataclass
class RedriveReport:
    messages: int = 0
    reprocessed: dict[str, int] = field(default_factory=dict)     # outcome -> uploads
    still_failing: int = 0                                         # messages left in the DLQ
    moved: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"messages": self.messages, "reprocessed": self.reprocessed,
                "still_failing": self.still_failing, "moved": self.moved}


def _receive(sqs: Any, queue_url: str, seen: set[str]) -> list[dict[str, Any]]:
    resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                               VisibilityTimeout=300, AttributeNames=["All"])
    return [m for m in resp.get("Messages", []) if m["MessageId"] not in seen]


def redrive(processor: Any, sqs: Any, dlq_url: str, *, limit: int | None = None) -> RedriveReport:
    """Reprocess the DLQ in-process; messages that still fail stay (invisible for 5 minutes, then back)."""
    report, seen = RedriveReport(), set()
    final_attempt = processor.settings.max_receive_count
    while limit is None or report.messages < limit:
        batch = _receive(sqs, dlq_url, seen)
        if not batch:
            return report
        for message in batch:
            seen.add(message["MessageId"])
            report.messages += 1
            ok = True
            for upload in uploads_from_sqs_body(message["Body"]):
                try:
                    outcome = processor.process(upload, attempt=final_attempt).outcome
                except Exception:       # the processor logged it and recorded `failed` where it could
                    outcome, ok = "fault", False
                report.reprocessed[outcome] = report.reprocessed.get(outcome, 0) + 1
            if ok:
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                report.still_failing += 1
    return report


def move(sqs: Any, dlq_url: str, queue_url: str) -> RedriveReport:
    """Send every DLQ message back to the assessment queue (the function reprocesses them)."""
    report, seen = RedriveReport(), set()
    while batch := _receive(sqs, dlq_url, seen):
        for message in batch:
            seen.add(message["MessageId"])
            sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            report.messages += 1
            report.moved += 1
    return report
