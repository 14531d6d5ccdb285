"""No upload without a final record: the deadline check, the dead-letter finalizer and the stuck sweep.

A delivery killed by the function timeout or the memory limit runs no Python after the kill, so the
handler's own ``give_up`` never happens: the record stays ``processing`` and nobody is notified. Here
the kill is a claim left behind (what the dead delivery wrote before it died); the process-level kill
is ``tests/integration/test_killed_delivery.py``.
"""

from __future__ import annotations

import dataclasses

import pytest

from boneage.processor import DUPLICATE, InProgress
from boneage.upload import Upload

from .conftest import World

KEY = "incoming/st-mary/hand.png"
BUDGET_S = 10


@pytest.fixture
def world(world: World) -> World:
    world.settings = dataclasses.replace(world.settings, assess_budget_s=BUDGET_S)
    return world


def _killed(world: World, upload: Upload) -> None:
    """A delivery that claimed the upload and was killed: its lease runs out, nothing else happens."""
    assert world.store.claim(upload, "st-mary", now=world.clock(), lease_seconds=60).owned


# -- the deadline check -----------------------------------------------------------------------------------
def test_an_upload_is_not_assessed_with_less_time_left_than_its_budget_and_is_retried(world: World) -> None:
    upload = world.put(KEY)
    [outcome] = world.processor().process_many([upload], [1], remaining_s=lambda: BUDGET_S - 0.1)
    assert type(outcome).__name__ == "DeadlineNear" and world.service.calls == []
    record = world.record(upload)
    assert record.status == "processing" and record.lease_until == 0     # released: the retry claims at once
    assert world.publisher.messages == []
    [again] = world.processor().process_many([upload], [2], remaining_s=lambda: float(BUDGET_S))
    assert again.outcome == "completed" and world.notified() == [(upload.upload_id, "completed")]


def test_the_deadline_on_the_last_attempt_records_failed_and_notifies_once(world: World) -> None:
    upload = world.put(KEY)
    [outcome] = world.processor().process_many([upload], [3], remaining_s=lambda: 1.0)
    assert type(outcome).__name__ == "DeadlineNear"
    record = world.record(upload)
    assert (record.status, record.result.reason, record.notified) == ("failed", "processing_failed", True)
    assert "too little time left" in record.result.message
    assert world.notified() == [(upload.upload_id, "failed")]


def test_a_batch_assesses_what_fits_in_the_time_left_and_retries_the_rest(world: World) -> None:
    uploads = [world.put(f"incoming/st-mary/{n}.png", b"IMG %d" % n) for n in range(3)]
    left = iter([25.0, 25.0, 15.0, 5.0])    # the batch needs 30 s; then one by one as time runs out
    outcomes = world.processor().process_many(uploads, [1, 1, 1], remaining_s=lambda: next(left))
    assert [o.outcome if not isinstance(o, Exception) else type(o).__name__ for o in outcomes] == [
        "completed", "completed", "DeadlineNear"]
    assert world.service.calls == [[f"upload:{u.upload_id}.png"] for u in uploads[:2]]   # never as a batch


def test_without_a_deadline_nothing_changes(world: World) -> None:
    upload = world.put(KEY)
    [outcome] = world.processor().process_many([upload], [1])
    assert outcome.outcome == "completed"


# -- the finalizer of dead-lettered events ----------------------------------------------------------------
def test_a_killed_last_delivery_is_finalized_failed_and_notified_exactly_once(world: World) -> None:
    upload = world.put(KEY)
    _killed(world, upload)
    world.clock.advance(400)                # the message reaches the dead-letter queue after its visibility timeout
    processor = world.processor()
    outcome = processor.finalize(upload)
    assert (outcome.outcome, outcome.notified) == ("failed", True)
    record = world.record(upload)
    assert (record.status, record.result.reason, record.notified_status, record.attempts) == (
        "failed", "processing_failed", "failed", 1)
    assert "timeout, out of memory or a crash" in record.result.message
    # The same dead-lettered event again (SQS is at-least-once): nothing more is written or sent.
    assert processor.finalize(upload).outcome == DUPLICATE
    assert world.notified() == [(upload.upload_id, "failed")]
    # ... and a redrive still completes it, notified once more with the final status.
    assert processor.process(upload, attempt=3).outcome == "completed"
    assert world.record(upload).status == "completed"
    assert world.notified() == [(upload.upload_id, "failed"), (upload.upload_id, "completed")]


def test_an_upload_killed_before_its_claim_gets_a_failed_record(world: World) -> None:
    upload = world.put(KEY)
    assert world.processor().finalize(upload).outcome == "failed"
    assert world.record(upload).status == "failed" and world.notified() == [(upload.upload_id, "failed")]


def test_the_finalizer_never_overwrites_a_result_and_sends_only_a_missing_notification(world: World) -> None:
    done, unsent, failed = (world.put(f"incoming/st-mary/{n}.png") for n in ("done", "unsent", "failed"))
    world.processor().process(done)
    claim = world.store.claim(unsent, "st-mary", now=world.clock(), lease_seconds=60)
    result, _ = world.service.assess(b"IMG", source="x")
    world.store.finish(claim, result, now=world.clock(), notify_lease_seconds=60)   # killed before publishing
    world.store.record_failure(failed, "st-mary", fault="RuntimeError", now=world.clock())   # give_up's record ...
    world.store.claim_notification(failed.upload_id, "failed", now=world.clock(), lease_seconds=60)  # ... killed
    before = len(world.publisher.messages)
    world.clock.advance(400)
    outcomes = [world.processor().finalize(u) for u in (done, unsent, failed)]
    assert [(o.outcome, o.notified) for o in outcomes] == [(DUPLICATE, False), ("completed", True), ("failed", True)]
    assert world.record(done).status == "completed" and world.record(unsent).status == "completed"
    assert "RuntimeError" in world.record(failed).result.message        # the fault give_up saw is kept
    assert world.notified()[before:] == [(unsent.upload_id, "completed"), (failed.upload_id, "failed")]


def test_the_finalizer_leaves_a_live_claim_alone_and_asks_to_be_retried(world: World) -> None:
    upload = world.put(KEY)
    _killed(world, upload)                  # still within its lease: a duplicate event's delivery is working
    with pytest.raises(InProgress):
        world.processor().finalize(upload)
    assert world.record(upload).status == "processing" and world.publisher.messages == []


def test_a_failed_finalization_raises_so_the_dead_lettered_event_is_kept(world: World) -> None:
    upload = world.put(KEY)
    _killed(world, upload)
    world.clock.advance(400)
    world.publisher.down.add("publish")
    with pytest.raises(Exception, match="sns unavailable"):
        world.processor().finalize(upload)
    world.publisher.down.clear()
    assert world.processor().finalize(upload).notified          # the retry sends it, once
    assert world.notified() == [(upload.upload_id, "failed")]


# -- the sweep of records left processing -----------------------------------------------------------------
def test_the_sweep_counts_and_settles_only_records_processing_past_lease_and_grace(world: World) -> None:
    old, recent = world.put("incoming/st-mary/old.png"), world.put("incoming/st-mary/recent.png")
    unversioned = Upload("in-bucket", "incoming/north-gen/plain.png", None)
    _killed(world, old)
    world.store.claim(unversioned, "north-gen", now=world.clock(), lease_seconds=60)
    world.clock.advance(300)
    _killed(world, recent)
    world.clock.advance(200)                # old: 440 s past its lease; recent: 140 s
    processor = world.processor()
    report = processor.sweep(stuck_after_s=360)
    assert dataclasses.astuple(report) == (2, 2)
    assert {u.upload_id: world.record(u).status for u in (old, recent, unversioned)} == {
        old.upload_id: "failed", recent.upload_id: "processing", unversioned.upload_id: "failed"}
    assert "left processing past its lease" in world.record(old).result.message
    assert sorted(world.notified()) == sorted([(old.upload_id, "failed"), (unversioned.upload_id, "failed")])
    assert dataclasses.astuple(processor.sweep(stuck_after_s=360)) == (0, 0)


def test_a_sweep_that_cannot_settle_still_counts_for_the_alarm(world: World) -> None:
    upload = world.put(KEY)
    _killed(world, upload)
    world.clock.advance(1000)
    world.publisher.down.add("publish")
    assert dataclasses.astuple(world.processor().sweep(stuck_after_s=360)) == (1, 0)
