"""The Lambda entry point: SQS batch in, partial-batch response out; raw S3 events accepted too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Imported at collection, before sockets are disabled: the X-Ray SDK under Powertools' Tracer opens
# (and, with tracing disabled, never uses) a UDP socket when it is first imported.
from boneage.devstack import LambdaContext, load_handler, sample_uploads
from boneage.service import AssessmentService
from boneage.upload import Upload

from .support import SpyAssessor

app_module = load_handler()

EVENTS = Path(__file__).resolve().parents[3] / "events"


@pytest.fixture
def app(aws):
    app_module.init(aws.processor())
    yield app_module
    app_module._processor = None


def _sqs_event(*bodies: dict, receive_count: str = "1") -> dict:
    template = json.loads((EVENTS / "sqs-s3-put.json").read_text())["Records"][0]
    records = []
    for n, body in enumerate(bodies):
        r = json.loads(json.dumps(template))
        r.update(messageId=f"m{n}", body=json.dumps(body))
        r["attributes"]["ApproximateReceiveCount"] = receive_count
        records.append(r)
    return {"Records": records}


def _s3_body(aws, key: str, version: str | None) -> dict:
    body = json.loads(json.loads((EVENTS / "sqs-s3-put.json").read_text())["Records"][0]["body"])
    obj = body["Records"][0]["s3"]
    obj["bucket"]["name"] = aws.input_bucket
    obj["object"].update(key=key.replace(" ", "+"), versionId=version)
    return body


def test_partial_batch_response_names_only_the_failed_message(aws, app, faults):
    done = aws.put("incoming/st-mary/a b.png", b"not an image")
    fresh = aws.put("incoming/north-gen/c.png", b"not an image either")
    first = _s3_body(aws, "incoming/st-mary/a b.png", done["VersionId"])
    assert app.handler(_sqs_event(first), LambdaContext()) == {"batchItemFailures": []}
    faults.down.add("sns")            # a duplicate needs no SNS; the fresh upload's notification fails
    response = app.handler(_sqs_event(first, _s3_body(aws, "incoming/north-gen/c.png", fresh["VersionId"])),
                           LambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert {i["source_key"]: (i["status"], i.get("notified_status")) for i in aws.items()} == {
        "incoming/st-mary/a b.png": ("rejected", "rejected"), "incoming/north-gen/c.png": ("rejected", None)}


def test_s3_test_event_is_acknowledged_without_a_record(aws, app):
    event = json.loads((EVENTS / "sqs-s3-test-event.json").read_text())
    assert app.handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert aws.items() == []


def test_direct_s3_event_from_the_events_folder_is_processed(aws, app):
    aws.put("incoming/st-mary/study-0001.dcm", b"DICM? no")
    event = json.loads((EVENTS / "s3-put.json").read_text())
    event["Records"][0]["s3"]["bucket"]["name"] = aws.input_bucket
    assert app.handler(event, LambdaContext()) == {"batchItemFailures": []}
    [item] = aws.items()
    assert (item["status"], item["reason"], item["hospital_id"]) == ("rejected", "not_an_image", "st-mary")
    assert item["source_version"] != "null"                # pinned from S3 when the event names none


def test_sqs_batch_runs_one_model_batch_and_reports_only_the_failing_message(aws, app):
    spy = SpyAssessor()
    app.init(aws.processor(AssessmentService(spy)))
    samples = {s.name: s for s in sample_uploads(3, size=256)}
    bodies, versions = [], {}
    for name in ("DICOM girl", "not an image", "right hand", "PNG boy with metadata"):
        s = samples[name]
        versions[s.key] = aws.put(s.key, s.body, s.metadata)["VersionId"]
        bodies.append(_s3_body(aws, s.key, versions[s.key]))
    # Another delivery holds a live claim on the right hand: its message (m2) must be retried, alone.
    right = samples["right hand"]
    app._processor.store.claim(Upload(aws.input_bucket, right.key, versions[right.key]), "st-mary",
                               now=app._processor.clock(), lease_seconds=60)
    assert app.handler(_sqs_event(*bodies), LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert spy.batches == [2]
    assert {i["source_key"]: i["status"] for i in aws.items()} == {
        samples["DICOM girl"].key: "completed", samples["not an image"].key: "rejected",
        right.key: "processing", samples["PNG boy with metadata"].key: "completed"}


def test_an_upload_is_not_started_with_less_time_left_than_its_budget(aws, app):
    put = aws.put("incoming/st-mary/late.png", b"not an image")
    body = _s3_body(aws, "incoming/st-mary/late.png", put["VersionId"])
    short = LambdaContext(timeout_ms=int(aws.settings.assess_budget_s * 1000) - 1)
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent"}     # acknowledged: Powertools raises if all fail
    assert app.handler(_sqs_event(body, test_event), short) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    [item] = aws.items()
    assert (item["status"], item["lease_until"]) == ("processing", 0)       # released for the retry
    # The last attempt with the deadline near records `failed` and notifies it instead of being killed.
    assert app.handler(_sqs_event(body, test_event, receive_count="3"), short) == {
        "batchItemFailures": [{"itemIdentifier": "m0"}]}
    [item] = aws.items()
    assert (item["status"], item["notified_status"]) == ("failed", "failed")
    assert app.handler(_sqs_event(body), LambdaContext()) == {"batchItemFailures": []}     # time enough: redriven
    assert aws.items()[0]["status"] == "rejected"
