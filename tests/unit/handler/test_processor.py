"""The upload use case wired to the real adapters on in-process AWS (moto): what only AWS can show.

The items, object keys, encryption and filter policies really written; AWS errors turned into
retryable faults; the size limit read from the GET's headers; PHI kept out of everything. The flow
itself (duplicates, retries, the last attempt, redrive, notification once) is tested on in-memory
ports in ``tests/unit/usecase``, the store's conditions for both in ``test_port_contracts.py``, and
concurrent deliveries on dynalite (``tests/integration/test_store_atomicity.py``): moto checks a
condition and then writes, so a race that passes on it proves nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from boneage.config import IngestSettings
from boneage.devstack import sample_uploads
from boneage.errors import TransientFault
from boneage.processor import DUPLICATE
from boneage.upload import Upload

SAMPLES = {s.name: s for s in sample_uploads(3, size=256)}


def _upload(aws: Any, name: str) -> Upload:
    sample = SAMPLES[name]
    put = aws.put(sample.key, sample.body, sample.metadata)
    return Upload(aws.input_bucket, sample.key, put.get("VersionId"))


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


def test_object_deleted_before_processing_is_rejected_not_retried(aws):
    upload = Upload(aws.input_bucket, "incoming/st-mary/gone.png", None)
    assert aws.processor().process(upload).outcome == "rejected"
    assert aws.items()[0]["reason"] == "object_not_found"


def test_an_object_over_the_size_limit_is_rejected_from_its_headers_without_reading_it(aws, monkeypatch):
    import dataclasses

    upload = _upload(aws, "PNG boy with metadata")
    size = len(SAMPLES["PNG boy with metadata"].body)
    aws.settings = dataclasses.replace(aws.settings, ingest=IngestSettings(max_file_bytes=size - 1))
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
