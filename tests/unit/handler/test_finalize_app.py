"""The finalizer's entry point: dead-lettered SQS events in (settled, then parked for the redrive), and
the scheduled sweep with its ``StuckUploads`` metric."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from boneage.devstack import LambdaContext, load_finalizer
from boneage.devstack.handler import FINALIZER_FILE
from boneage.upload import Upload

finalizer = load_finalizer()

EVENTS = Path(__file__).resolve().parents[3] / "events"


@pytest.fixture
def parked(aws) -> str:
    return aws.clients.sqs.create_queue(QueueName="redrive")["QueueUrl"]


@pytest.fixture
def app(aws, parked):
    clock = {"now": time.time()}
    processor = aws.processor(clock=lambda: clock["now"])
    finalizer.init(processor, lambda body: aws.clients.sqs.send_message(QueueUrl=parked, MessageBody=body) and None)
    finalizer.clock = clock         # the tests move time on: leases run out without waiting
    yield finalizer
    finalizer._processor = finalizer._park = None


def _dead_lettered(aws, key: str, version: str | None, message_id: str = "d0") -> dict:
    event = json.loads((EVENTS / "sqs-dlq-s3-put.json").read_text())
    [record] = event["Records"]
    body = json.loads(record["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = aws.input_bucket
    body["Records"][0]["s3"]["object"].update(key=key, versionId=version)
    record.update(messageId=message_id, body=json.dumps(body))
    return event


def _parked(aws, url: str) -> list[str]:
    resp = aws.clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [m["Body"] for m in resp.get("Messages", [])]


def test_a_dead_lettered_killed_upload_is_recorded_failed_notified_once_and_parked_for_redrive(aws, app, parked):
    put = aws.put("incoming/st-mary/k.png", b"not an image")
    u = Upload(aws.input_bucket, "incoming/st-mary/k.png", put["VersionId"])
    assert app._processor.store.claim(u, "st-mary", now=app.clock["now"], lease_seconds=60).owned   # then killed
    app.clock["now"] += 400
    event = _dead_lettered(aws, "incoming/st-mary/k.png", put["VersionId"])
    assert app.handler(event, LambdaContext()) == {"batchItemFailures": []}
    [item] = aws.items()
    assert (item["status"], item["reason"], item["notified_status"]) == ("failed", "processing_failed", "failed")
    assert [n["MessageAttributes"]["status"]["Value"] for n in aws.notifications("st-mary")] == ["failed"]
    assert _parked(aws, parked) == [event["Records"][0]["body"]]
    assert app.handler(event, LambdaContext()) == {"batchItemFailures": []}      # delivered twice: nothing more
    assert aws.notifications("st-mary") == []


def test_an_event_that_cannot_be_settled_stays_in_the_dead_letter_queue(aws, app, parked, faults):
    put = aws.put("incoming/st-mary/k.png", b"not an image")
    event = _dead_lettered(aws, "incoming/st-mary/k.png", put["VersionId"])
    [test_event] = _dead_lettered(aws, "incoming/x", None, "d1")["Records"]
    test_event["body"] = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})   # no upload: just parked
    event["Records"].append(test_event)
    faults.down.add("sns")
    assert app.handler(event, LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "d0"}]}
    assert _parked(aws, parked) == [test_event["body"]]           # d0 is not parked: it stays in the DLQ
    faults.down.clear()
    app.clock["now"] += 120                                        # the failed publish's notification lease
    assert app.handler({"Records": event["Records"][:1]}, LambdaContext()) == {"batchItemFailures": []}
    assert [n["MessageAttributes"]["status"]["Value"] for n in aws.notifications("st-mary")] == ["failed"]
    assert _parked(aws, parked) == [event["Records"][0]["body"]]


def test_the_scheduled_sweep_publishes_the_stuck_count_and_settles_them(aws, app, capsys):
    put = aws.put("incoming/north-gen/s.png", b"x")
    u = Upload(aws.input_bucket, "incoming/north-gen/s.png", put["VersionId"])
    app._processor.store.claim(u, "north-gen", now=app.clock["now"], lease_seconds=60)
    app.clock["now"] += 60 + aws.settings.stuck_after_s + 1
    event = json.loads((EVENTS / "schedule-sweep.json").read_text())
    capsys.readouterr()
    assert app.handler(event, LambdaContext()) == {"stuck": 1, "finalized": 1}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [metrics] = [m for m in emf if "StuckUploads" in m]
    assert metrics["StuckUploads"] in (1, 1.0, [1.0])
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "BoneAge"
    assert metrics["service"] == "boneage"          # the alarm's dimension
    assert [i["status"] for i in aws.items()] == ["failed"]
    assert app.handler(event, LambdaContext()) == {"stuck": 0, "finalized": 0}


def test_the_finalizer_imports_no_torch() -> None:
    code = ("import runpy, sys; runpy.run_path(sys.argv[1]); "
            "assert not [m for m in sys.modules if m == 'torch' or m.startswith('torch.')], 'torch imported'")
    subprocess.run([sys.executable, "-c", code, str(FINALIZER_FILE)], check=True, timeout=120)
