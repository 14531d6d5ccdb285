"""Invoke the Lambda handler in-process on an event file against the emulator: `sam local invoke` without Docker.

    python scripts/invoke_local.py events/sqs-s3-put.json            # starts moto, deploys, uploads, invokes
    python scripts/invoke_local.py events/s3-put.json --env-vars build/local-stack.env.json   # running stack

Without ``--env-vars`` a fresh local stack is started (``boneage.devstack``), the event's bucket is
pointed at the stack's input bucket and a generated radiograph is uploaded to every key the event names,
so the handler finds the objects the event talks about. With ``--env-vars`` (a SAM env-vars file,
``{"AssessFunction": {...}}``, or a flat object such as the one ``python scripts/local_stack.py`` writes)
the handler runs against whatever those variables point at. Prints the handler's response and the
resulting records.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from boneage.devstack import LambdaContext, LocalStack, load_env_vars, load_handler, onboard, sample_uploads


def s3_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The S3 records of a raw S3 event or inside each SQS message body (copies)."""
    found: list[dict[str, Any]] = []
    map_s3_records(event, lambda r: found.append(r) or r)
    return found


def map_s3_records(event: dict[str, Any], fn: Any) -> dict[str, Any]:
    """A copy of ``event`` with ``fn`` applied to each S3 record, including those inside SQS bodies."""
    event = json.loads(json.dumps(event))
    for record in event.get("Records") or []:
        if record.get("eventSource") == "aws:sqs":
            body = json.loads(record["body"])
            body["Records"] = [fn(r) for r in body.get("Records") or []]
            record["body"] = json.dumps(body)
    if (event.get("Records") or [{}])[0].get("eventSource") == "aws:s3":
        event["Records"] = [fn(r) for r in event["Records"]]
    return event


def point_event_at(event: dict[str, Any], bucket: str) -> dict[str, Any]:
    """The same event with every S3 record naming ``bucket`` (what a real upload to the stack would send)."""
    def repoint(record: dict[str, Any]) -> dict[str, Any]:
        record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
        return record

    return map_s3_records(event, repoint)


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    return load_handler().handler(event, LambdaContext()) or {}


def print_records(event: dict[str, Any]) -> None:
    from boneage.adapters.events import uploads_from_s3_event
    from boneage.adapters.runtime import Clients
    from boneage.adapters.store import ResultStore
    from boneage.config import Settings

    settings = Settings.from_env()
    store = ResultStore(Clients.create(settings).dynamodb, settings.results_table)
    for upload in uploads_from_s3_event({"Records": s3_records(event)}):
        item = store.get(upload.upload_id) if upload.version_id else None
        if item is None:    # an event without versionId: look the latest version's record up by scanning keys
            item = next((i for i in _scan(store) if i.get("source_key") == upload.key), None)
        print(json.dumps({k: v for k, v in (item or {"upload_id": upload.upload_id, "status": None}).items()
                          if k not in ("timings_ms",)}, indent=2, default=str))


def _scan(store: Any) -> list[dict[str, Any]]:
    from boneage.adapters.store import _unmarshal

    return [_unmarshal(i) for i in store._db.scan(TableName=store.table)["Items"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event", type=Path, help="event file (events/s3-put.json, events/sqs-s3-put.json, ...)")
    parser.add_argument("--env-vars", type=Path, help="environment of a running stack (SAM env-vars format or flat)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the radiograph uploaded for the event")
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text())

    if args.env_vars:
        os.environ.update(load_env_vars(args.env_vars))
        response = invoke(event)
        print(json.dumps(response, indent=2))
        print_records(event)
        return 0 if not response.get("batchItemFailures") else 1

    sample = sample_uploads(args.seed)[0]
    with LocalStack.start(stack_name="boneage-invoke") as stack, stack.environment():
        event = point_event_at(event, stack.input_bucket)

        def upload(record: dict[str, Any]) -> dict[str, Any]:
            # Put a radiograph where the event says one is, as the folder's hospital (onboarded here), and
            # name the version S3 gave it and the principal that put it, as S3's event would.
            key = unquote_plus(record["s3"]["object"]["key"])
            hospital = key.split("/")[1] if key.count("/") >= 2 else None
            access = onboard(stack, hospital) if hospital else None
            s3 = access.client("s3") if access else stack.client("s3")
            put = s3.put_object(Bucket=stack.input_bucket, Key=key, Body=sample.body, Metadata=sample.metadata)
            if access:
                record["userIdentity"] = {"principalId": access.principal_id}
            record["s3"]["object"]["versionId"] = put.get("VersionId")
            record["s3"]["object"]["size"] = len(sample.body)
            return record

        event = map_s3_records(event, upload)
        response = invoke(event)
        print(json.dumps(response, indent=2))
        print_records(event)
    return 0 if not response.get("batchItemFailures") else 1


if __name__ == "__main__":
    sys.exit(main())
