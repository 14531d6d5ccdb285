"""Reprocess uploads whose events landed in the dead-letter queue, once the fault is fixed.

    python scripts/redrive.py                      # reprocess in this process (the function's code and model)
    python scripts/redrive.py --move               # send the events back to the assessment queue instead
    python scripts/redrive.py --env-vars build/local-stack.env.json    # against the local emulator

It reads the dead-letter queue (``DLQ_URL``) and the redrive queue (``REDRIVE_QUEUE_URL``), where the
finalizer function parks each dead-lettered event once it has recorded it ``failed`` and notified it;
``--dlq-url`` names one queue instead.

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
from pathlib import Path

from boneage.adapters.redrive import move, redrive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-vars", type=Path, help="environment file (SAM env-vars format or flat)")
    parser.add_argument("--dlq-url", help="the one queue to redrive from (default: $DLQ_URL and $REDRIVE_QUEUE_URL)")
    parser.add_argument("--queue-url", help="assessment queue URL for --move (default: $QUEUE_URL)")
    parser.add_argument("--move", action="store_true", help="re-send to the assessment queue instead of processing here")
    parser.add_argument("--limit", type=int, help="at most this many messages")
    args = parser.parse_args(argv)
    if args.env_vars:
        from boneage.devstack import load_env_vars

        os.environ.update(load_env_vars(args.env_vars))

    from boneage.adapters.runtime import Clients
    from boneage.config import Settings

    settings = Settings.from_env()
    # The finalizer parks what it settled in the redrive queue; what it has not taken yet is still in the DLQ.
    sources = [args.dlq_url] if args.dlq_url else [u for u in (settings.dlq_url, settings.redrive_queue_url) if u]
    if not sources:
        parser.error("no dead-letter queue: pass --dlq-url or set DLQ_URL / REDRIVE_QUEUE_URL")
    sqs = Clients.create(settings).sqs
    queue_url = args.queue_url or settings.queue_url
    if args.move and not queue_url:
        parser.error("--move needs --queue-url or QUEUE_URL")
    processor = None
    if not args.move:
        from boneage.devstack import load_handler

        processor = load_handler().init()
    reports = [move(sqs, url, queue_url) if processor is None else redrive(processor, sqs, url, limit=args.limit)
               for url in sources]
    print(json.dumps([r.as_dict() for r in reports] if len(reports) > 1 else reports[0].as_dict()))
    return 1 if any(r.still_failing for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
