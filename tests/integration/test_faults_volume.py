"""Faults injected across 200+ uploads: every upload ends in exactly one terminal record.

A fake fast assessor stands in for the model here only (the volume would otherwise take minutes on
two cores); ingest, clinical interpretation, the records and the notifications are the real ones.
DynamoDB and SNS faults are injected at the boto3 level (a real ClientError, code
ServiceUnavailable), model faults by the assessor raising. Deliveries that fail are retried by the
emulated event source mapping; after MaxReceiveCount failures moto moves the event to the DLQ, and
``scripts/redrive.py`` reprocesses it once the faults stop.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter

import numpy as np
import pytest

from boneage.adapters.redrive import redrive
from boneage.adapters.runtime import Clients, build_processor
from boneage.adapters.store import _unmarshal
from boneage.config import Settings
from boneage.devstack import onboard
from boneage.imaging.testing import png_bytes
from boneage.service import AssessmentService
from boneage.upload import PROCESSING, TERMINAL, upload_id_for
from tests.unit.handler.support import FakeAssessor, FaultInjector

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UPLOADS = 210
HOSPITALS = ("vol-a", "vol-b", "vol-c")


def _tiny_reports(radiograph, output, result) -> dict[str, bytes]:
    return {"report.png": b"\x89PNG placeholder"}


def _scan(stack) -> list[dict]:
    ddb, items, kwargs = stack.client("dynamodb"), [], {}
    while True:
        page = ddb.scan(TableName=stack.outputs["ResultsTableName"], **kwargs)
        items += [_unmarshal(i) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def test_every_upload_ends_in_exactly_one_terminal_record_despite_faults(stack, handler):
    rng = np.random.default_rng(2024)
    # A short lease so claims left by deliveries whose release was also hit by a fault expire quickly.
    settings = dataclasses.replace(Settings.from_env(), lease_seconds=1)
    clients = Clients.create(settings)
    faults = FaultInjector(rates={"dynamodb": 0.05, "sns": 0.15}, seed=7).attach(
        [clients.dynamodb, clients.sns, clients.s3])
    model = FakeAssessor(fail_rate=0.3, seed=11)
    service = AssessmentService(model, report_builder=_tiny_reports)
    handler.init(build_processor(settings, service, clients=clients))
    inbox = stack.subscribe_queue("inbox-vol-all", filter_policy={"hospital_id": list(HOSPITALS)})

    s3 = {h: onboard(stack, h).client("s3") for h in HOSPITALS}     # each hospital uploads as its own role
    expected: dict[str, str] = {}
    for n in range(UPLOADS):
        hospital = HOSPITALS[n % len(HOSPITALS)]
        bad = n % 10 == 9
        body = b"GIF89a not a radiograph" if bad else png_bytes(rng.integers(0, 255, (48, 40), dtype=np.uint8))
        key = f"incoming/{hospital}/vol-{n:04d}.png"
        put = s3[hospital].put_object(Bucket=stack.input_bucket, Key=key, Body=body,
                                      Metadata={"sex": "F", "age-months": "100"})
        expected[upload_id_for(stack.input_bucket, key, put["VersionId"])] = "rejected" if bad else "completed"

    t0 = time.monotonic()
    deliveries = stack.drain(handler.handler)   # one poller: moto races moving messages to the DLQ
    drained_s = time.monotonic() - t0
    assert deliveries > UPLOADS                       # faults forced retries
    assert sum(faults.injected.values()) > 20 and model.failures > 20

    before = {i["upload_id"]: i for i in _scan(stack) if i["upload_id"] in expected}
    dead = stack.queue_depth(stack.dlq_url)
    failed = [i for i in before.values() if i["status"] == "failed"]
    assert dead > 0 and failed, "the fault rates should exhaust some uploads' retries"
    assert all("failed after retries" in i["message"] for i in failed)

    # The faults stop; the redrive reprocesses whatever the DLQ holds (as `scripts/redrive.py` does).
    faults.rates.clear()
    model.fail_rate = 0.0
    time.sleep(1.1)                                   # leases of crashed deliveries expire (LEASE_SECONDS)
    report = redrive(handler._processor, stack.client("sqs"), stack.dlq_url)
    assert report.messages == dead and report.still_failing == 0
    assert stack.queue_depth(stack.dlq_url) == 0

    items = [i for i in _scan(stack) if i["upload_id"] in expected]
    assert len(items) == len({i["upload_id"] for i in items}) == UPLOADS      # exactly one record each
    assert all(i["status"] in TERMINAL and i["status"] != PROCESSING for i in items)
    assert {i["upload_id"]: i["status"] for i in items} == expected
    assert all(i["notified_status"] == i["status"] for i in items)

    # Every upload's final status reached its hospital; duplicates only where a fault hit between
    # publishing and recording the publication (at-least-once, deduplicated by the upload_id attribute).
    notes = [n for n in stack.received_notifications(inbox)]
    final = Counter()
    for n in notes:
        attrs = {k: v["Value"] for k, v in n["MessageAttributes"].items()}
        if attrs["status"] == expected.get(attrs["upload_id"]):
            final[attrs["upload_id"]] += 1
    assert set(final) == set(expected)
    # A `failed` record that was notified before the redrive reached the hospital's subscription too.
    told_failed = {i["upload_id"] for i in failed if i.get("notified_status") == "failed"}
    heard_failed = {n["MessageAttributes"]["upload_id"]["Value"] for n in notes
                    if n["MessageAttributes"]["status"]["Value"] == "failed"}
    assert told_failed and told_failed <= heard_failed
    assert sum(final.values()) - len(expected) <= faults.injected.get("dynamodb.UpdateItem", 0)
    print(json.dumps({"uploads": UPLOADS, "deliveries": deliveries, "drain_s": round(drained_s, 1),
                      "injected": faults.injected, "model_faults": model.failures,
                      "failed_before_redrive": len(failed), "dead_lettered": dead}))
