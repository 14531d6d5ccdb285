"""Reprocess uploads whose events landed in the dead-letter queue, once the fault is fixed.

    python scripts/redrive.py                      # reprocess in this process (the function's code and model)
    python scripts/redrive.py --move               # send the events back to the assessment queue instead
    python scripts/redrive.py --env-vars build/local-stack.env.json    # against the local emulator

Each dead-lettered message holds the original S3 event. In-process redrive runs every upload through
the same ``UploadProcessor`` as the function, as its last attempt: success overwrites a ``failed``
record with the result (and notifies it once); a persisting fault writes or keeps the ``failed``
record, and the message stays in the DLQ for the next redrive. ``--move`` is for AWS, where the
function should do the work: it re-sends each message to the assessment queue and deletes it from
the DLQ (``aws sqs start-message-move-task`` does the same).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "functions" / "assess")]


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
    from boneage.adapters.events import uploads_from_sqs_body

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-vars", type=Path, help="environment file (SAM env-vars format or flat)")
    parser.add_argument("--dlq-url", help="dead-letter queue URL (default: $DLQ_URL)")
    parser.add_argument("--queue-url", help="assessment queue URL for --move (default: $QUEUE_URL)")
    parser.add_argument("--move", action="store_true", help="re-send to the assessment queue instead of processing here")
    parser.add_argument("--limit", type=int, help="at most this many messages")
    args = parser.parse_args(argv)
    if args.env_vars:
        from invoke_local import load_env_vars

        os.environ.update(load_env_vars(args.env_vars))

    from boneage.adapters.runtime import Clients
    from boneage.config import Settings

    settings = Settings.from_env()
    dlq_url = args.dlq_url or settings.dlq_url
    if not dlq_url:
        parser.error("no dead-letter queue: pass --dlq-url or set DLQ_URL")
    sqs = Clients.create(settings).sqs
    if args.move:
        queue_url = args.queue_url or settings.queue_url
        if not queue_url:
            parser.error("--move needs --queue-url or QUEUE_URL")
        report = move(sqs, dlq_url, queue_url)
    else:
        import app

        report = redrive(app.init(), sqs, dlq_url, limit=args.limit)
    print(json.dumps(report.as_dict()))
    return 1 if report.still_failing else 0


if __name__ == "__main__":
    sys.exit(main())
