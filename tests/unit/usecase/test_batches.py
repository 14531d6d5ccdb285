"""Several uploads in one invocation: one assessment call, then a record, a notification and a fault per upload."""

from __future__ import annotations

import dataclasses

from boneage.errors import TransientFault
from boneage.fakes import FakeAssessmentService
from boneage.processor import DUPLICATE
from boneage.upload import Upload

from .conftest import BUCKET, World

GIRL, BOY, RIGHT = "incoming/st-mary/girl.dcm", "incoming/north-gen/boy.png", "incoming/st-mary/right.jpg"


def _name(upload: Upload) -> str:
    return f"upload:{upload.upload_id}{upload.extension}"


def test_three_uploads_are_assessed_in_one_call_with_a_record_and_a_notification_each(world: World) -> None:
    uploads = [world.put(GIRL, b"IMG girl"), world.put(BOY, b"IMG boy"), world.put(RIGHT, b"IMG right")]
    outcomes = world.processor().process_many(uploads, [1, 1, 1])
    assert world.service.calls == [[_name(u) for u in uploads]]
    assert [(o.upload_id, o.outcome, o.notified) for o in outcomes] == [(u.upload_id, "completed", True)
                                                                        for u in uploads]
    assert all(r.status == "completed" and r.attempts == 1 and r.report_keys for r in world.store.records)
    assert sorted(world.notified()) == sorted((u.upload_id, "completed") for u in uploads)


def test_a_rejected_upload_in_a_batch_is_recorded_and_the_others_complete(world: World) -> None:
    uploads = [world.put(GIRL, b"IMG girl"), world.put("incoming/st-mary/notes.txt", b"hello"), world.put(BOY)]
    outcomes = world.processor().process_many(uploads, [1, 1, 1])
    assert [o.outcome for o in outcomes] == ["completed", "rejected", "completed"]
    assert sorted(world.notified()) == sorted(
        [(uploads[0].upload_id, "completed"), (uploads[1].upload_id, "rejected"), (uploads[2].upload_id, "completed")])


def test_an_upload_rejected_before_assessment_never_reaches_the_service(world: World) -> None:
    uploads = [world.put(GIRL, b"IMG girl"), world.put("incoming/loose.png"), world.put(BOY)]
    outcomes = world.processor().process_many(uploads, [1, 1, 1])
    assert [o.outcome for o in outcomes] == ["completed", "rejected", "completed"]
    assert world.service.calls == [[_name(uploads[0]), _name(uploads[2])]]


def test_a_failing_batch_falls_back_to_assessing_each_upload_alone(world: World) -> None:
    uploads = [world.put(GIRL, b"IMG girl"), world.put(BOY, b"IMG boy"), world.put(RIGHT, b"IMG right")]
    service = FakeAssessmentService(fail_batches=True)
    outcomes = world.processor(service).process_many(uploads, [1, 1, 1])
    assert [len(call) for call in service.calls] == [3, 1, 1, 1]
    assert [o.outcome for o in outcomes] == ["completed"] * 3
    assert all(r.status == "completed" and r.attempts == 1 for r in world.store.records)
    assert len(world.publisher.messages) == 3


def test_one_upload_that_crashes_the_model_fails_only_its_own_delivery(world: World) -> None:
    uploads = [world.put(GIRL, b"IMG girl"), world.put(BOY, b"CRASH"), world.put(RIGHT, b"IMG right")]
    outcomes = world.processor().process_many(uploads, [1, 1, 1])
    assert [type(o).__name__ for o in outcomes] == ["Outcome", "RuntimeError", "Outcome"]
    assert (world.record(uploads[1]).status, world.record(uploads[1]).lease_until) == ("processing", 0)
    assert sorted(world.notified()) == sorted((u.upload_id, "completed") for u in (uploads[0], uploads[2]))


def test_a_fault_before_the_claim_fails_only_that_upload(world: World) -> None:
    unpinned = Upload(BUCKET, "incoming/st-mary/no-version.png", None)   # needs the current version first
    boy = world.put(BOY)
    world.objects.down.add("current_version")
    outcomes = world.processor().process_many([unpinned, boy], [1, 1])
    assert isinstance(outcomes[0], TransientFault) and outcomes[1].outcome == "completed"
    assert [r.upload_id for r in world.store.records] == [boy.upload_id]


def test_model_faults_in_a_batch_fail_each_upload_on_its_own_attempt_count(world: World) -> None:
    girl, boy = world.put(GIRL, b"IMG girl"), world.put(BOY)
    outcomes = world.processor(FakeAssessmentService(fail=True)).process_many([girl, boy], [3, 1])  # girl's last
    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]
    assert (world.record(girl).status, world.record(girl).notified_status) == ("failed", "failed")
    assert (world.record(boy).status, world.record(boy).lease_until) == ("processing", 0)      # released
    assert world.notified() == [(girl.upload_id, "failed")]
    # The boy's retry completes the one record it has; the girl's failed record stands until a redrive.
    assert world.processor().process_many([boy], [2])[0].outcome == "completed"
    assert (world.record(boy).status, world.record(boy).attempts) == ("completed", 2)
    assert world.record(girl).status == "failed"


def test_the_same_upload_twice_in_a_batch_is_assessed_and_notified_once(world: World) -> None:
    boy, girl = world.put(BOY), world.put(GIRL, b"IMG girl")
    outcomes = world.processor().process_many([boy, boy, girl], [1, 1, 1])
    assert [o.outcome for o in outcomes] == ["completed", DUPLICATE, "completed"]
    assert world.service.calls == [[_name(boy), _name(girl)]] and len(world.store.records) == 2
    assert sorted(world.notified()) == sorted([(boy.upload_id, "completed"), (girl.upload_id, "completed")])


def test_an_upload_finished_earlier_is_not_assessed_again_in_a_later_batch(world: World) -> None:
    processor = world.processor()
    boy, girl = world.put(BOY), world.put(GIRL, b"IMG girl")
    processor.process(boy)
    outcomes = processor.process_many([boy, girl], [2, 1])
    assert [o.outcome for o in outcomes] == [DUPLICATE, "completed"]
    assert world.service.calls == [[_name(boy)], [_name(girl)]]      # the boy once, then only the girl
    assert sorted(world.notified()) == sorted([(boy.upload_id, "completed"), (girl.upload_id, "completed")])


def test_a_batch_writes_and_sends_what_the_same_uploads_one_by_one_would(world: World) -> None:
    alone = World()
    keys = [(GIRL, b"IMG girl", {"sex": "F"}), (BOY, b"IMG boy", {"sex": "M"}), ("incoming/h/x.txt", b"no", None)]
    batched_uploads = [world.put(*k) for k in keys]
    alone_uploads = [alone.put(*k) for k in keys]
    assert batched_uploads == alone_uploads
    world.processor().process_many(batched_uploads, [1, 1, 1])
    for upload in alone_uploads:
        alone.processor().process(upload)

    def written(w: World) -> list[object]:
        return sorted((repr(dataclasses.replace(r, created_at="", updated_at="", notified_at=""))
                       for r in w.store.records))

    assert written(world) == written(alone)
    assert sorted(map(repr, world.publisher.messages)) == sorted(map(repr, alone.publisher.messages))
    assert world.reports.files == alone.reports.files
    assert len(world.service.calls) == 1 and len(alone.service.calls) == 3
