"""The per-upload flow against in-process AWS: records, notifications, idempotency, faults, PHI."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from boneage.adapters.events import Upload
from boneage.adapters.processor import DUPLICATE, InProgress
from boneage.devstack import sample_uploads
from boneage.errors import TransientFault
from boneage.service import AssessmentService

from .support import FakeAssessor

SAMPLES = {s.name: s for s in sample_uploads(3, size=256)}


def _upload(aws: Any, name: str, key: str | None = None) -> Upload:
    sample = SAMPLES[name]
    put = aws.put(key or sample.key, sample.body, sample.metadata)
    return Upload(aws.input_bucket, key or sample.key, put.get("VersionId"))


def _attrs(note: dict) -> dict[str, str]:
    return {k: v["Value"] for k, v in note["MessageAttributes"].items()}


def test_completed_upload_writes_one_record_report_and_filtered_notification(aws):
    upload = _upload(aws, "PNG boy with metadata")
    outcome = aws.processor().process(upload)
    assert outcome.outcome == "completed" and outcome.notified
    [item] = aws.items()
    assert item["upload_id"] == upload.upload_id and item["hospital_id"] == "north-gen"
    assert item["status"] == "completed" and item["bone_age_months"] > 0
    assert item["sex"] == "M" and item["chronological_age_months"] == 126
    assert item["notified_status"] == "completed" and item["attempts"] == 1
    report_key = item["report_keys"]["report.png"]
    assert report_key == f"reports/north-gen/{upload.upload_id[:16]}/report.png"
    head = aws.clients.s3.head_object(Bucket=aws.settings.results_bucket, Key=report_key)
    assert head["ServerSideEncryption"] == "aws:kms" and head["ContentType"] == "image/png"
    [note] = aws.notifications("north-gen")
    assert _attrs(note) == {"hospital_id": "north-gen", "status": "completed",
                            "interpretation": item["interpretation"] or "none", "upload_id": upload.upload_id}
    body = json.loads(note["Message"])
    assert body["bone_age_months"] == item["bone_age_months"] and "report.png" in body["report_url"]
    assert aws.notifications("st-mary") == []          # the other hospital's filter policy keeps it out


def test_a_file_that_is_not_an_image_is_rejected_with_its_reason(aws):
    upload = _upload(aws, "not an image")
    assert aws.processor().process(upload).outcome == "rejected"
    [item] = aws.items()
    assert (item["status"], item["reason"]) == ("rejected", "not_an_image") and item["report_keys"] == {}
    [note] = aws.notifications("north-gen")
    assert _attrs(note)["status"] == "rejected" and json.loads(note["Message"])["reason"] == "not_an_image"


def test_upload_outside_a_hospital_prefix_is_rejected_as_unknown_hospital(aws):
    upload = _upload(aws, "PNG boy with metadata", key="incoming/loose-file.png")
    assert aws.processor().process(upload).outcome == "rejected"
    [item] = aws.items()
    assert item["reason"] == "unknown_hospital" and item["hospital_id"] == "_unknown"


def test_object_deleted_before_processing_is_rejected_not_retried(aws):
    upload = Upload(aws.input_bucket, "incoming/st-mary/gone.png", None)
    assert aws.processor().process(upload).outcome == "rejected"
    assert aws.items()[0]["reason"] == "object_not_found"


def test_an_object_over_the_size_limit_is_rejected_from_its_headers_without_reading_it(aws, monkeypatch):
    import dataclasses

    upload = _upload(aws, "PNG boy with metadata")
    size = len(SAMPLES["PNG boy with metadata"].body)
    aws.settings = dataclasses.replace(aws.settings, max_object_bytes=size - 1)
    reads: list[int | None] = []
    from botocore.response import StreamingBody

    real_read = StreamingBody.read
    monkeypatch.setattr(StreamingBody, "read", lambda self, amt=None: reads.append(amt) or real_read(self, amt))
    assert aws.processor().process(upload).outcome == "rejected"
    [item] = aws.items()
    assert item["reason"] == "too_large" and str(size) in item["message"]
    assert reads == []                                      # the body was never read
    [note] = aws.notifications("st-mary") + aws.notifications("north-gen")
    assert _attrs(note)["status"] == "rejected"


def test_duplicate_deliveries_write_one_record_and_one_notification(aws):
    upload = _upload(aws, "PNG boy with metadata")
    processor = aws.processor()
    outcomes = [processor.process(upload).outcome for _ in range(3)]
    assert outcomes == ["completed", DUPLICATE, DUPLICATE]
    assert len(aws.items()) == 1 and len(aws.notifications("north-gen")) == 1


def test_concurrent_duplicate_deliveries_write_one_record_and_one_notification(aws):
    upload = _upload(aws, "PNG boy with metadata")
    processor = aws.processor()
    barrier, outcomes = threading.Barrier(3), []

    def deliver() -> None:
        barrier.wait()
        for attempt in (1, 2, 3):               # an InProgress delivery is retried, as SQS would
            try:
                outcomes.append(processor.process(upload, attempt=attempt).outcome)
                return
            except InProgress:
                threading.Event().wait(0.2)
        outcomes.append("still in progress")

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["completed", DUPLICATE, DUPLICATE]
    assert len(aws.items()) == 1 and len(aws.notifications("north-gen")) == 1


def test_sns_unavailable_retries_and_notifies_exactly_once(aws, faults):
    upload = _upload(aws, "PNG boy with metadata")
    processor = aws.processor()
    faults.down.add("sns")
    with pytest.raises(TransientFault, match="sns unavailable"):
        processor.process(upload, attempt=1)
    [item] = aws.items()
    assert item["status"] == "completed" and "notified_status" not in item     # written, not yet told
    faults.down.clear()
    assert processor.process(upload, attempt=2).notified
    assert processor.process(upload, attempt=1).outcome == DUPLICATE
    assert len(aws.notifications("north-gen")) == 1 and len(aws.items()) == 1


def test_dynamodb_unavailable_raises_and_the_retry_completes(aws, faults):
    upload = _upload(aws, "PNG boy with metadata")
    processor = aws.processor()
    faults.down.add("dynamodb")
    with pytest.raises(TransientFault, match="dynamodb unavailable: ServiceUnavailable"):
        processor.process(upload, attempt=1)
    faults.down.clear()
    assert aws.items() == []
    assert processor.process(upload, attempt=2).outcome == "completed"
    assert len(aws.notifications("north-gen")) == 1


def test_dynamodb_failing_while_finishing_releases_the_claim_for_the_retry(aws, faults):
    upload = _upload(aws, "PNG boy with metadata")
    processor = aws.processor()
    faults.down.add("dynamodb.PutItem")
    with pytest.raises(TransientFault):
        processor.process(upload, attempt=1)
    [item] = aws.items()
    assert item["status"] == "processing" and item["lease_until"] == 0
    faults.down.clear()
    assert processor.process(upload, attempt=2).outcome == "completed"
    assert aws.items()[0]["attempts"] == 2


def test_model_fault_on_the_last_attempt_records_failed_then_redrive_completes(aws):
    upload = _upload(aws, "PNG boy with metadata")
    broken = aws.processor(AssessmentService(FakeAssessor(fail_rate=1.0)))
    for attempt in (1, 2):
        with pytest.raises(RuntimeError):
            broken.process(upload, attempt=attempt)
        assert aws.items()[0]["status"] == "processing"
    with pytest.raises(RuntimeError):
        broken.process(upload, attempt=3)                 # the last delivery: Lambda then dead-letters it
    [item] = aws.items()
    assert (item["status"], item["reason"], item["notified_status"]) == ("failed", "processing_failed", "failed")
    assert "RuntimeError" in item["message"] and item["attempts"] == 3
    [note] = aws.notifications("north-gen")
    assert _attrs(note)["status"] == "failed"
    # The redrive reprocesses the same upload: the one record moves to completed and says so once.
    assert aws.processor().process(upload, attempt=3).outcome == "completed"
    [item] = aws.items()
    assert item["status"] == "completed" and item["attempts"] == 4
    assert [_attrs(n)["status"] for n in aws.notifications("north-gen")] == ["completed"]


def test_a_live_claim_is_never_overwritten_by_a_duplicate_giving_up(aws):
    upload = _upload(aws, "PNG boy with metadata")
    processor = aws.processor()
    processor.store.claim(upload, "north-gen", now=processor.clock(), lease_seconds=60)   # another delivery
    with pytest.raises(InProgress):
        processor.process(upload, attempt=3)
    [item] = aws.items()
    assert item["status"] == "processing" and "notified_status" not in item


def test_no_patient_identity_reaches_record_notification_keys_or_logs(aws, capsys):
    upload = _upload(aws, "DICOM girl")
    assert aws.processor().process(upload).outcome == "completed"
    [item] = aws.items()
    [note] = aws.notifications("st-mary")
    keys = [o["Key"] for o in aws.clients.s3.list_objects_v2(Bucket=aws.settings.results_bucket)["Contents"]]
    assert item["sex"] == "F" and item["accession_number"] == "ACC1001"
    assert sorted(item["report_keys"]) == ["report.png", "report_sc.dcm", "report_sr.dcm"]
    logs = capsys.readouterr()
    everything = json.dumps([item, note, keys, logs.out, logs.err], default=str)
    for phi in ("Demo^Jane", "Demo", "MRN-DEMO-0042", "20170301"):
        assert phi not in everything, phi


def test_finishing_takes_the_notification_lease_in_the_same_write(aws):
    """One round trip fewer per upload: the finishing write holds the right to notify, so a duplicate
    that finds the record finished but not yet notified cannot publish until that lease runs out."""
    from boneage.adapters.store import ResultStore
    from boneage.result import AssessmentResult

    store = ResultStore(aws.clients.dynamodb, aws.settings.results_table)
    upload = _upload(aws, "PNG boy with metadata")
    claim = store.claim(upload, "st-mary", now=1000.0, lease_seconds=60)
    result = AssessmentResult(source="upload:x.png", status="rejected", reason="not_an_image", message="m")
    assert store.finish(claim, result, now=1001.0, notify_lease_seconds=60) is not None
    assert not store.claim_notification(upload.upload_id, "rejected", now=1002.0, lease_seconds=60)
    assert store.claim_notification(upload.upload_id, "rejected", now=1062.0, lease_seconds=60)   # lease ran out
