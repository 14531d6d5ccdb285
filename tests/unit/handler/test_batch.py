"""Several uploads in one invocation on the real service and adapters: one model batch, a record and a
notification each. How the use case batches, falls back and fails per upload is tested on in-memory
ports in ``tests/unit/usecase/test_batches.py``."""

from __future__ import annotations

from typing import Any

from boneage.devstack import sample_uploads
from boneage.service import AssessmentService
from boneage.upload import Upload

from .support import SpyAssessor

SAMPLES = {s.name: s for s in sample_uploads(3, size=256)}
GOOD = ("DICOM girl", "PNG boy with metadata", "right hand")


def _upload(aws: Any, name: str) -> Upload:
    sample = SAMPLES[name]
    put = aws.put(sample.key, sample.body, sample.metadata)
    return Upload(aws.input_bucket, sample.key, put.get("VersionId"))


def _statuses(aws: Any) -> dict[str, str]:
    return {i["upload_id"]: i["status"] for i in aws.items()}


def _notified(aws: Any) -> list[str]:
    notes = aws.notifications("st-mary") + aws.notifications("north-gen")
    return sorted(n["MessageAttributes"]["upload_id"]["Value"] for n in notes)


def test_three_uploads_run_as_one_model_batch_with_a_record_and_notification_each(aws, capsys):
    spy = SpyAssessor()
    uploads = [_upload(aws, name) for name in GOOD]
    outcomes = aws.processor(AssessmentService(spy)).process_many(uploads, [1, 1, 1])
    assert spy.batches == [3]
    assert [(o.upload_id, o.outcome, o.notified) for o in outcomes] == [(u.upload_id, "completed", True)
                                                                        for u in uploads]
    assert _statuses(aws) == {u.upload_id: "completed" for u in uploads}
    assert all(i["attempts"] == 1 and i["report_keys"] for i in aws.items())
    assert _notified(aws) == sorted(u.upload_id for u in uploads)
    logs = capsys.readouterr()
    for phi in ("Demo^Jane", "MRN-DEMO-0042", "20170301", "upload 2002"):
        assert phi not in logs.out + logs.err, phi


def test_a_corrupt_upload_in_a_batch_is_rejected_and_the_others_complete(aws):
    spy = SpyAssessor()
    uploads = [_upload(aws, n) for n in ("DICOM girl", "not an image", "PNG boy with metadata")]
    outcomes = aws.processor(AssessmentService(spy)).process_many(uploads, [1, 1, 1])
    assert [o.outcome for o in outcomes] == ["completed", "rejected", "completed"]
    assert spy.batches == [2]                      # the file that is not an image never reaches the model
    reasons = {i["upload_id"]: i.get("reason") for i in aws.items()}
    assert reasons[uploads[1].upload_id] == "not_an_image" and len(reasons) == 3
    assert _notified(aws) == sorted(u.upload_id for u in uploads)
