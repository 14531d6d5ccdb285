"""A worker process killed on the upload's last delivery, as a function timeout or an out-of-memory kill
does: the record must still end terminal, notified once, and redrivable.

The real handler (``functions/assess/app.py``) runs in a child process against the local stack, on the
last delivery of a real S3 event; its model stage hangs, and the test SIGKILLs the process once the
record is ``processing`` (no Python runs after SIGKILL: no ``give_up``, no release). The queue then does
what SQS does (the message comes back after its visibility timeout and, its receive count spent, moves
to the dead-letter queue), the emulated event source mapping of the dead-letter queue delivers it to
the finalizer (``functions/finalize/app.py``), and ``scripts/redrive.py``'s ``redrive`` completes it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from typing import Any

import numpy as np
import pytest

from boneage.adapters.redrive import redrive
from boneage.adapters.runtime import build_processor
from boneage.adapters.store import ResultStore
from boneage.config import Settings
from boneage.devstack import ROOT, LambdaContext, LocalStack, load_finalizer, onboard
from boneage.imaging.testing import png_bytes
from boneage.service import AssessmentService
from boneage.upload import Upload, upload_id_for
from tests.unit.handler.support import FakeAssessor

pytestmark = pytest.mark.integration

HOSPITAL = "it-killed"
LEASE_S = 2         # the dead delivery's lease: short, so the test need not wait a function timeout


class _Hangs:
    """An assessment service whose model never returns: the function timeout (here SIGKILL) ends it."""

    model_version = "hangs"

    def assess(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(3600)

    def assess_many(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(3600)


def _last_delivery(event: dict[str, Any], env: dict[str, str]) -> None:
    """The child: the deployed handler on one SQS event, with the function's environment."""
    os.environ.update(env)
    from boneage.devstack import load_handler

    app = load_handler()
    app.init(build_processor(Settings.from_env(), _Hangs()))
    app.handler(event, LambdaContext())


def _receive_ours(stack: LocalStack, queue_url: str, key: str) -> dict[str, Any]:
    """One delivery of our upload's event (other tests' messages go back untouched)."""
    sqs, deadline = stack.client("sqs"), time.monotonic() + 30
    while time.monotonic() < deadline:
        event, messages = stack.receive_event(queue_url)
        for record, message in zip(event["Records"], messages, strict=True):
            if key.replace("/", "%2F") in record["body"] or key in record["body"]:     # moto quotes the key
                return {"Records": [record]}
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
        time.sleep(0.05)        # S3 -> SQS is asynchronous
    raise AssertionError("the upload's event never arrived")


def _statuses(stack: LocalStack, inbox: str) -> list[str]:
    return [n["MessageAttributes"]["status"]["Value"] for n in stack.received_notifications(inbox)]


def test_a_worker_killed_on_the_last_delivery_still_ends_failed_notified_once_and_redrivable(stack):
    inbox = stack.subscribe_queue("inbox-it-killed", filter_policy={"hospital_id": [HOSPITAL]})
    key = f"incoming/{HOSPITAL}/hand.png"
    body = png_bytes(np.random.default_rng(5).integers(0, 255, (48, 40), dtype=np.uint8))
    s3 = onboard(stack, HOSPITAL).client("s3")         # the hospital's own role: the function checks the putter
    put = s3.put_object(Bucket=stack.input_bucket, Key=key, Body=body, Metadata={"sex": "F"})
    upload_id = upload_id_for(stack.input_bucket, key, put["VersionId"])
    store = ResultStore(stack.client("dynamodb"), stack.outputs["ResultsTableName"])
    sqs, last = stack.client("sqs"), stack.max_receive_count

    # Earlier deliveries died before claiming (their receive counts are spent); the last one is the child's.
    for _ in range(last - 1):
        [record] = _receive_ours(stack, stack.queue_url, key)["Records"]
        sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=record["receiptHandle"],
                                      VisibilityTimeout=0)
    event = _receive_ours(stack, stack.queue_url, key)
    [record] = event["Records"]
    assert record["attributes"]["ApproximateReceiveCount"] == str(last)

    env = {**stack.handler_env, "LEASE_SECONDS": str(LEASE_S)}
    worker = multiprocessing.get_context("spawn").Process(target=_last_delivery, args=(event, env))
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while (found := store.read(upload_id)) is None or found.status != "processing":
            assert worker.is_alive() and time.monotonic() < deadline, "the worker never claimed the upload"
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)         # the timeout / the OOM killer: no Python runs after this
    finally:
        worker.join(30)
    assert worker.exitcode == -signal.SIGKILL
    # What the old code left: `processing` for good, nobody told.
    assert store.read(upload_id).status == "processing" and _statuses(stack, inbox) == []

    # SQS: the visibility timeout runs out, the receive count is spent, the next receive dead-letters it.
    sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=record["receiptHandle"],
                                  VisibilityTimeout=0)
    assert stack.receive_event(stack.queue_url)[1] == []
    time.sleep(LEASE_S + 1)                     # the dead claim's lease runs out (in AWS: long before)

    finalizer = load_finalizer()
    finalizer.init()
    try:
        assert stack.drain(finalizer.handler, queue_url=stack.dlq_url, idle_rounds=2) == 1
        settled = store.read(upload_id)
        assert (settled.status, settled.result.reason, settled.notified_status) == (
            "failed", "processing_failed", "failed")
        assert _statuses(stack, inbox) == ["failed"]
        assert stack.queue_depth(stack.dlq_url) == 0
        redrive_url = stack.outputs["RedriveQueueUrl"]
        assert stack.queue_depth(redrive_url) == 1          # parked for the redrive

        # The event dead-lettered twice (SQS is at-least-once): nothing more is written or sent.
        sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=record["body"])
        assert stack.drain(finalizer.handler, queue_url=stack.dlq_url, idle_rounds=2) == 1
        assert _statuses(stack, inbox) == [] and store.read(upload_id).updated_at == settled.updated_at
        # Nothing is left processing for the sweep to find.
        sweep = json.loads((ROOT / "events" / "schedule-sweep.json").read_text())
        assert finalizer.handler(sweep, LambdaContext())["stuck"] == 0
    finally:
        finalizer._processor = finalizer._park = None

    # Once the cause is fixed, the redrive completes it and the final status is notified once.
    processor = build_processor(Settings.from_env(), AssessmentService(FakeAssessor()))
    report = redrive(processor, sqs, redrive_url)
    assert report.reprocessed == {"completed": 1, "duplicate": 1} and report.still_failing == 0
    assert store.read(upload_id).status == "completed"
    assert _statuses(stack, inbox) == ["completed"]


def test_a_record_whose_event_was_lost_is_found_by_the_sweep_on_the_deployed_index(stack):
    # A redrive killed half-way: the record is `processing`, and its event sits invisible in the redrive
    # queue, where no function reads it. Only the sweep, through the template's by_lease index, finds it.
    inbox = stack.subscribe_queue("inbox-it-stuck", filter_policy={"hospital_id": ["it-stuck"]})
    key = "incoming/it-stuck/hand.png"
    put = stack.client("s3").put_object(Bucket=stack.input_bucket, Key=key, Body=b"x")
    upload = Upload(stack.input_bucket, key, put["VersionId"])
    store = ResultStore(stack.client("dynamodb"), stack.outputs["ResultsTableName"])
    assert store.claim(upload, "it-stuck", now=time.time() - 10, lease_seconds=2).owned    # then killed
    sweep = json.loads((ROOT / "events" / "schedule-sweep.json").read_text())
    finalizer = load_finalizer()
    try:
        with stack.environment(STUCK_AFTER_S="60"):
            finalizer.init()
            assert finalizer.handler(sweep, LambdaContext()) == {"stuck": 0, "finalized": 0}   # within the grace
        with stack.environment(STUCK_AFTER_S="5"):
            finalizer.init()
            assert finalizer.handler(sweep, LambdaContext()) == {"stuck": 1, "finalized": 1}
            assert finalizer.handler(sweep, LambdaContext()) == {"stuck": 0, "finalized": 0}
    finally:
        finalizer._processor = finalizer._park = None
    record = store.read(upload.upload_id)
    assert (record.status, record.notified_status) == ("failed", "failed")
    assert "left processing past its lease" in record.result.message
    assert _statuses(stack, inbox) == ["failed"]
