"""The per-upload flow on in-memory ports: records, notifications, idempotency, retries, faults, logs."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from boneage.errors import TransientFault
from boneage.fakes import FakeAssessmentService
from boneage.processor import DUPLICATE, InProgress
from boneage.upload import UNKNOWN_HOSPITAL_ID, Upload, object_ref_for

from .conftest import BUCKET, World

BOY = "incoming/north-gen/study 1.png"


def test_completed_upload_writes_one_record_its_reports_and_one_notification(world: World) -> None:
    upload = world.put(BOY, b"IMG boy", {"Sex": "M"})
    outcome = world.processor().process(upload)
    assert (outcome.upload_id, outcome.hospital_id, outcome.outcome, outcome.notified) == (
        upload.upload_id, "north-gen", "completed", True)
    [record] = world.store.records
    assert (record.upload_id, record.hospital_id, record.status, record.attempts) == (
        upload.upload_id, "north-gen", "completed", 1)
    assert record.notified_status == "completed" and record.result is not None and record.result.sex == "M"
    prefix = f"reports/north-gen/{upload.upload_id[:16]}/"
    assert record.report_keys == {n: prefix + n for n in ("report.png", "report_sc.dcm", "report_sr.dcm")}
    assert sorted(world.reports.files) == sorted(record.report_keys.values())
    # The service is given a name without the key (file names may carry PHI), with the extension kept.
    assert world.service.calls == [[f"upload:{upload.upload_id}.png"]]
    [message] = world.publisher.messages
    assert message.attributes == {"hospital_id": "north-gen", "status": "completed",
                                  "interpretation": "within_normal_limits", "upload_id": upload.upload_id}
    [body] = world.bodies()
    assert body["bone_age_months"] == record.result.bone_age_months
    assert body["report_url"].endswith(prefix + "report.png?expires-in=3600")
    assert body["report_url_expires_in_s"] == 3600
    # What the DICOM gateway files the result under and fetches the SC/SR from: a hash of the key, not the key.
    assert body["report_keys"] == record.report_keys
    assert body["object_ref"] == object_ref_for(upload.bucket, upload.key) and upload.key not in json.dumps(body)


def test_a_file_that_is_not_an_image_is_rejected_recorded_and_notified_with_its_reason(world: World) -> None:
    upload = world.put("incoming/st-mary/notes.txt", b"hello")
    assert world.processor().process(upload).outcome == "rejected"
    record = world.record(upload)
    assert record.result is not None and (record.status, record.result.reason) == ("rejected", "not_an_image")
    assert record.report_keys == {} and world.reports.files == {}
    [body] = world.bodies()
    assert (body["status"], body["reason"], body["report_url"]) == ("rejected", "not_an_image", None)


def test_upload_outside_a_hospital_prefix_is_rejected_as_unknown_hospital_without_being_read(world: World) -> None:
    upload = world.put("incoming/loose-file.png")
    assert world.processor().process(upload).outcome == "rejected"
    record = world.record(upload)
    assert record.result is not None and record.result.reason == "unknown_hospital"
    assert record.hospital_id == UNKNOWN_HOSPITAL_ID and world.objects.fetches == 0 and world.service.calls == []
    assert world.publisher.messages[0].attributes["hospital_id"] == UNKNOWN_HOSPITAL_ID


def test_a_hospital_outside_the_allow_list_is_rejected_as_unknown_hospital(world: World) -> None:
    world.settings = dataclasses.replace(world.settings, allowed_hospitals=frozenset({"st-mary"}))
    outcomes = [world.processor().process(world.put(key)).outcome
                for key in ("incoming/st-mary/a.png", "incoming/north-gen/b.png")]
    assert outcomes == ["completed", "rejected"]
    assert {r.hospital_id: r.result.reason for r in world.store.records if r.result} == {
        "st-mary": None, "north-gen": "unknown_hospital"}


def test_object_deleted_before_processing_is_rejected_not_retried(world: World) -> None:
    upload = Upload(BUCKET, "incoming/st-mary/gone.png", None)
    assert world.processor().process(upload).outcome == "rejected"
    [record] = world.store.records
    assert record.result is not None and record.result.reason == "object_not_found"


def test_an_object_over_the_size_limit_is_rejected_as_too_large(world: World) -> None:
    world.objects.max_bytes = 5
    upload = world.put(BOY, b"IMG boy")
    assert world.processor().process(upload).outcome == "rejected"
    record = world.record(upload)
    assert record.result is not None and record.result.reason == "too_large" and "7 bytes" in record.result.message
    assert world.service.calls == []


def test_an_event_without_a_version_is_pinned_to_the_version_there_now(world: World) -> None:
    world.put(BOY, b"IMG old")
    current = world.put(BOY, b"IMG new")
    assert world.processor().process(Upload(BUCKET, BOY, None)).upload_id == current.upload_id
    assert world.record(current).version_id == current.version_id


def test_duplicate_deliveries_write_one_record_and_one_notification(world: World) -> None:
    upload = world.put(BOY)
    processor = world.processor()
    assert [processor.process(upload).outcome for _ in range(3)] == ["completed", DUPLICATE, DUPLICATE]
    assert len(world.store.records) == 1 and len(world.publisher.messages) == 1 and len(world.service.calls) == 1


def test_concurrent_duplicate_deliveries_write_one_record_and_one_notification(world: World) -> None:
    upload = world.put(BOY)
    processor = world.processor()
    barrier, outcomes = threading.Barrier(3), []

    def deliver() -> None:
        barrier.wait()
        # An InProgress delivery is retried, as SQS would, until the first one is done; never as the
        # last attempt (that one records `failed`, which a live claim must survive, tested elsewhere).
        deadline = time.monotonic() + 30
        attempt = 1
        while time.monotonic() < deadline:
            try:
                outcomes.append(processor.process(upload, attempt=attempt).outcome)
                return
            except InProgress:
                attempt = 2
                threading.Event().wait(0.05)
        outcomes.append("still in progress")

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["completed", DUPLICATE, DUPLICATE]
    assert len(world.store.records) == 1 and len(world.publisher.messages) == 1


def test_publisher_down_retries_and_notifies_exactly_once(world: World) -> None:
    upload = world.put(BOY)
    processor = world.processor()
    world.publisher.down.add("publish")
    with pytest.raises(TransientFault, match="sns unavailable"):
        processor.process(upload, attempt=1)
    record = world.record(upload)
    assert record.status == "completed" and record.notified_status is None       # written, not yet told
    assert record.notify_lease_until == 0          # given back, so the retry need not wait for the lease
    world.publisher.down.clear()
    assert processor.process(upload, attempt=2).notified
    assert processor.process(upload, attempt=1).outcome == DUPLICATE
    assert world.notified() == [(upload.upload_id, "completed")] and len(world.service.calls) == 1


def test_store_down_raises_and_the_retry_completes(world: World) -> None:
    upload = world.put(BOY)
    processor = world.processor()
    world.store.down.add("*")
    with pytest.raises(TransientFault, match="dynamodb unavailable"):
        processor.process(upload, attempt=1)
    world.store.down.clear()
    assert world.store.records == [] and world.publisher.messages == []
    assert processor.process(upload, attempt=2).outcome == "completed"
    assert world.notified() == [(upload.upload_id, "completed")]


def test_store_failing_while_finishing_releases_the_claim_for_the_retry(world: World) -> None:
    upload = world.put(BOY)
    processor = world.processor()
    world.store.down.add("finish")
    with pytest.raises(TransientFault):
        processor.process(upload, attempt=1)
    record = world.record(upload)
    assert record.status == "processing" and record.lease_until == 0
    world.store.down.clear()
    assert processor.process(upload, attempt=2).outcome == "completed"       # at once: no lease to wait out
    assert world.record(upload).attempts == 2


def test_a_report_write_fault_fails_the_delivery_before_anything_is_recorded(world: World) -> None:
    upload = world.put(BOY)
    world.reports.down.add("write")
    with pytest.raises(TransientFault, match="s3 unavailable"):
        world.processor().process(upload, attempt=1)
    assert world.record(upload).status == "processing" and world.publisher.messages == []


def test_model_fault_on_the_last_attempt_records_failed_then_redrive_completes(world: World) -> None:
    upload = world.put(BOY)
    broken = world.processor(FakeAssessmentService(fail=True))
    for attempt in (1, 2):
        with pytest.raises(RuntimeError):
            broken.process(upload, attempt=attempt)
        assert world.record(upload).status == "processing"
    with pytest.raises(RuntimeError):
        broken.process(upload, attempt=3)                 # the last delivery: Lambda then dead-letters it
    record = world.record(upload)
    assert record.result is not None
    assert (record.status, record.result.reason, record.notified_status) == ("failed", "processing_failed", "failed")
    assert "RuntimeError" in record.result.message and record.attempts == 3
    assert record.result.model_version == "fake-model"
    # The redrive reprocesses the same upload: the one record moves to completed and says so once.
    assert world.processor().process(upload, attempt=3).outcome == "completed"
    record = world.record(upload)
    assert (record.status, record.attempts, len(world.store.records)) == ("completed", 4, 1)
    assert world.notified() == [(upload.upload_id, "failed"), (upload.upload_id, "completed")]


def test_a_live_claim_is_never_overwritten_by_a_duplicate_giving_up(world: World) -> None:
    upload = world.put(BOY)
    world.store.claim(upload, "north-gen", now=world.clock(), lease_seconds=60)   # another delivery
    with pytest.raises(InProgress):
        world.processor().process(upload, attempt=3)
    record = world.record(upload)
    assert record.status == "processing" and record.notified_status is None and world.publisher.messages == []


def test_a_delivery_whose_claim_was_taken_over_writes_nothing_and_leaves_the_new_claim_alone(world: World) -> None:
    upload = world.put(BOY)
    taken: list[Any] = []

    class Slow(FakeAssessmentService):
        """The assessment outlives the lease; another delivery claims the upload meanwhile."""

        def assess_many(self, items: Any, **kw: Any) -> Any:
            world.clock.advance(61)
            taken.append(world.store.claim(upload, "north-gen", now=world.clock(), lease_seconds=60))
            return super().assess_many(items, **kw)

    with pytest.raises(InProgress, match="took the upload over"):
        world.processor(Slow()).process(upload, attempt=1)
    record = world.record(upload)
    assert taken[0].owned and record.status == "processing" and record.attempts == 2
    assert record.lease_until == int(world.clock()) + 60          # the new owner's lease, not released
    assert world.publisher.messages == []


def test_a_duplicate_sends_the_notification_a_crashed_delivery_did_not(world: World) -> None:
    upload = world.put(BOY)
    processor = world.processor()
    # A delivery wrote the record (taking the notification lease with it) and died before publishing.
    claim = world.store.claim(upload, "north-gen", now=world.clock(), lease_seconds=60)
    result, _ = world.service.assess(b"IMG boy", source="upload:x.png")
    world.store.finish(claim, result, now=world.clock(), notify_lease_seconds=60)
    with pytest.raises(InProgress, match="sending this upload's notification"):
        processor.process(upload, attempt=2)              # the lease may still be the publisher's
    world.clock.advance(61)
    outcome = processor.process(upload, attempt=3)
    assert (outcome.outcome, outcome.notified) == ("completed", True)
    assert processor.process(upload, attempt=1).outcome == DUPLICATE
    assert world.notified() == [(upload.upload_id, "completed")] and len(world.service.calls) == 1


def test_when_even_recording_the_failure_fails_the_original_fault_is_raised_and_nothing_is_sent(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    upload = world.put(BOY)
    world.store.down.add("record_failure")
    with caplog.at_level(logging.INFO, logger="boneage.processor"), pytest.raises(RuntimeError):
        world.processor(FakeAssessmentService(fail=True)).process(upload, attempt=3)
    record = world.record(upload)
    assert (record.status, record.lease_until) == ("processing", 0)     # the redrive settles it
    assert world.publisher.messages == []
    assert "could not record the failure" in caplog.messages


def test_logs_carry_upload_hospital_attempt_and_fault_but_never_the_key(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    upload = world.put("incoming/st-mary/Doe^Jane 20170301.png")
    with caplog.at_level(logging.INFO, logger="boneage.processor"):
        with pytest.raises(RuntimeError):
            world.processor(FakeAssessmentService(fail=True)).process(upload, attempt=1)
        world.processor().process(upload, attempt=2)
    fields = [(r.getMessage(), r.upload_id, r.hospital_id, r.attempt, getattr(r, "fault", None))
              for r in caplog.records]
    assert fields == [
        ("claimed upload", upload.upload_id, "st-mary", 1, None),
        ("upload fault", upload.upload_id, "st-mary", 1, "RuntimeError"),
        ("claimed upload", upload.upload_id, "st-mary", 2, None),
        ("upload finished", upload.upload_id, "st-mary", 2, None),
    ]
    # The record keeps the key itself, by design (docs/serverless.md: "keep PHI out of file names").
    records = [dataclasses.replace(r, key="") for r in world.store.records]
    everything = json.dumps([[vars(r) for r in caplog.records], [vars(r) for r in records],
                             [vars(m) for m in world.publisher.messages], list(world.reports.files)], default=str)
    for phi in ("Doe", "Jane", "20170301"):
        assert phi not in everything, phi


def test_the_use_case_imports_no_aws_sdk_no_powertools_and_no_adapter() -> None:
    """It runs anywhere its ports are filled: the AWS side stays in ``boneage.adapters``."""
    code = ("import sys, boneage.processor, boneage.fakes; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'moto', "
            "'aws_lambda_powertools', 'torch') or m.startswith('boneage.adapters')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
