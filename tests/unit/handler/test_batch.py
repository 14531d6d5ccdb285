"""Several uploads in one invocation: one model batch, then a record, a notification and a failure per upload."""

from __future__ import annotations

from typing import Any

from boneage.adapters.events import Upload
from boneage.adapters.processor import DUPLICATE
from boneage.devstack import sample_uploads
from boneage.service import AssessmentService

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


def test_a_failing_model_batch_falls_back_to_assessing_each_upload_alone(aws):
    spy = SpyAssessor(fail_batches=True)
    uploads = [_upload(aws, name) for name in GOOD]
    outcomes = aws.processor(AssessmentService(spy)).process_many(uploads, [1, 1, 1])
    assert spy.batches == [3, 1, 1, 1]
    assert [o.outcome for o in outcomes] == ["completed"] * 3
    assert _statuses(aws) == {u.upload_id: "completed" for u in uploads}
    assert all(i["attempts"] == 1 for i in aws.items())
    assert _notified(aws) == sorted(u.upload_id for u in uploads)


def test_model_faults_in_a_batch_fail_each_upload_on_its_own_attempt_count(aws):
    girl, boy = _upload(aws, "DICOM girl"), _upload(aws, "PNG boy with metadata")
    broken = aws.processor(AssessmentService(SpyAssessor(fail_rate=1.0)))
    outcomes = broken.process_many([girl, boy], [3, 1])       # the girl's last delivery, the boy's first
    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]
    items = {i["upload_id"]: i for i in aws.items()}
    assert (items[girl.upload_id]["status"], items[girl.upload_id]["notified_status"]) == ("failed", "failed")
    assert (items[boy.upload_id]["status"], items[boy.upload_id]["lease_until"]) == ("processing", 0)  # released
    assert _notified(aws) == [girl.upload_id]
    # The boy's retry completes the one record it has; the girl's failed record stands until a redrive.
    assert aws.processor().process_many([boy], [2])[0].outcome == "completed"
    items = {i["upload_id"]: i for i in aws.items()}
    assert (items[boy.upload_id]["status"], items[boy.upload_id]["attempts"]) == ("completed", 2)
    assert _notified(aws) == [boy.upload_id]


def test_the_same_upload_twice_in_a_batch_is_assessed_and_notified_once(aws):
    spy = SpyAssessor()
    boy, girl = _upload(aws, "PNG boy with metadata"), _upload(aws, "DICOM girl")
    outcomes = aws.processor(AssessmentService(spy)).process_many([boy, boy, girl], [1, 1, 1])
    assert [o.outcome for o in outcomes] == ["completed", DUPLICATE, "completed"]
    assert spy.batches == [2] and len(aws.items()) == 2
    assert _notified(aws) == sorted([boy.upload_id, girl.upload_id])


def test_an_upload_finished_earlier_is_not_assessed_again_in_a_later_batch(aws):
    spy = SpyAssessor()
    processor = aws.processor(AssessmentService(spy))
    boy, girl = _upload(aws, "PNG boy with metadata"), _upload(aws, "DICOM girl")
    processor.process(boy)
    outcomes = processor.process_many([boy, girl], [2, 1])
    assert [o.outcome for o in outcomes] == [DUPLICATE, "completed"]
    assert spy.batches == [1, 1]                    # the boy once, then only the girl
    assert _notified(aws) == sorted([boy.upload_id, girl.upload_id])
    assert _statuses(aws) == {boy.upload_id: "completed", girl.upload_id: "completed"}
