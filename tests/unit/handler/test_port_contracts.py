"""The same assertions against each port's fake (``boneage.fakes``) and its AWS adapter on the emulator.

The use-case tests trust the fakes; these tests are why they may: a condition of the table that the
fake does not keep (or keeps differently) fails here for one of the two. They also pin the typed
record the DynamoDB adapter reads back, numbers included (the table returns 178.0 as 178).
"""

from __future__ import annotations

from typing import Any

import pytest

from boneage.adapters.s3 import ObjectReader
from boneage.adapters.store import ResultStore
from boneage.errors import Rejection
from boneage.fakes import InMemoryObjects, InMemoryResultStore
from boneage.result import AssessmentResult
from boneage.upload import StoredRecord, Upload

T = 1_700_000_000.0
A = Upload("in-bucket", "incoming/st-mary/a.png", "v1")
B = Upload("in-bucket", "incoming/st-mary/b.png", None)


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return InMemoryResultStore()
    aws = request.getfixturevalue("aws")
    return ResultStore(aws.clients.dynamodb, aws.settings.results_table)


def _completed() -> AssessmentResult:
    return AssessmentResult(
        source="upload:a.png", status="completed", bone_age_months=178.0, bone_age_interval_months=[169.0, 187.5],
        chronological_age_months=126.0, sds=0.0, sex="M", interpretation="within_normal_limits",
        hand_box=[10.0, 20.0, 200.0, 250.0], model_version="m-1", warnings=["note"], timings_ms={"model": 12.0},
        report_files=["report.png"])


def _read(store: Any, upload: Upload) -> StoredRecord:
    record = store.read(upload.upload_id)
    assert record is not None
    return record


def test_a_claim_holds_the_upload_until_its_lease_runs_out_and_only_the_holder_finishes(store: Any) -> None:
    first = store.claim(A, "st-mary", now=T, lease_seconds=60)
    assert first.owned and (first.status, first.attempts, first.record.lease_until) == ("processing", 1, int(T) + 60)
    r = first.record
    assert (r.upload_id, r.hospital_id, r.bucket, r.key, r.version_id, r.result) == (
        A.upload_id, "st-mary", "in-bucket", "incoming/st-mary/a.png", "v1", None)
    busy = store.claim(A, "st-mary", now=T + 10, lease_seconds=60)
    assert not busy.owned and (busy.status, busy.attempts) == ("processing", 1)
    second = store.claim(A, "st-mary", now=T + 61, lease_seconds=60)      # the first delivery died
    assert second.owned and second.attempts == 2
    assert store.finish(first, _completed(), now=T + 62) is None          # not the holder any more
    record = store.finish(second, _completed(), now=T + 62, report_keys={"report.png": "reports/k.png"})
    assert (record.status, record.attempts, record.report_keys, record.notified) == (
        "completed", 2, {"report.png": "reports/k.png"}, False)
    assert record.result.source == f"upload:{A.upload_id}"                # the key's name is not kept
    assert record.result.bone_age_months == 178.0 and type(record.result.bone_age_months) is float
    assert record.result.bone_age_interval_months == [169.0, 187.5]
    assert record.result.hand_box == [10.0, 20.0, 200.0, 250.0]
    assert all(type(v) is float for v in [*record.result.hand_box, *record.result.timings_ms.values()])
    assert _read(store, A) == record                    # what is read back is what the write returned
    done = store.claim(A, "st-mary", now=T + 1000, lease_seconds=60)
    assert not done.owned and done.record == record     # finished: never claimed again
    assert store.finish(second, _completed(), now=T + 63) is None          # nor finished twice


def test_release_lets_the_next_delivery_claim_at_once_but_only_the_holder_releases(store: Any) -> None:
    first = store.claim(A, "st-mary", now=T, lease_seconds=60)
    store.release(first)
    assert _read(store, A).lease_until == 0
    second = store.claim(A, "st-mary", now=T + 1, lease_seconds=60)
    assert second.owned
    store.release(first)                                 # a stale claim cannot end the new one's lease
    assert not store.claim(A, "st-mary", now=T + 2, lease_seconds=60).owned


def test_one_notification_per_status_with_its_own_lease(store: Any) -> None:
    claim = store.claim(A, "st-mary", now=T, lease_seconds=60)
    store.finish(claim, _completed(), now=T + 1, notify_lease_seconds=60)  # the finisher holds the right to publish
    assert not store.claim_notification(A.upload_id, "completed", now=T + 2, lease_seconds=60)
    assert store.claim_notification(A.upload_id, "completed", now=T + 62, lease_seconds=60)   # it died
    assert not store.claim_notification(A.upload_id, "completed", now=T + 63, lease_seconds=60)
    store.release_notification(A.upload_id)             # the publish failed: the retry may go at once
    assert store.claim_notification(A.upload_id, "completed", now=T + 64, lease_seconds=60)
    assert not store.claim_notification(A.upload_id, "rejected", now=T + 200, lease_seconds=60)   # not its status
    assert not store.mark_notified(A.upload_id, "rejected", now=T + 65)
    assert store.mark_notified(A.upload_id, "completed", now=T + 65)
    assert not store.claim_notification(A.upload_id, "completed", now=T + 1000, lease_seconds=60)  # went out
    record = _read(store, A)
    assert (record.notified_status, record.notified, record.notify_lease_until) == ("completed", True, None)


def test_a_failure_is_recorded_over_a_dead_claim_or_nothing_never_over_a_live_claim_or_a_result(store: Any) -> None:
    failed = store.record_failure(B, None, fault="RuntimeError", now=T, model_version="m-1")   # never claimed
    assert (failed.status, failed.hospital_id, failed.attempts, failed.version_id) == ("failed", "_unknown", 0, "null")
    assert (failed.result.reason, failed.result.model_version) == ("processing_failed", "m-1")
    assert failed.result.message == "assessment failed after retries (RuntimeError); the upload can be redriven"
    assert _read(store, B) == failed

    live = store.claim(A, "st-mary", now=T, lease_seconds=60)
    assert store.record_failure(A, "st-mary", fault="x", now=T + 30) is None
    assert store.record_failure(A, "st-mary", fault="x", now=T + 61).status == "failed"    # the lease ran out
    assert store.finish(live, _completed(), now=T + 62) is None           # the failure ended the claim
    assert store.claim_notification(A.upload_id, "failed", now=T + 62, lease_seconds=60)
    assert store.mark_notified(A.upload_id, "failed", now=T + 62)
    redrive = store.claim(A, "st-mary", now=T + 100, lease_seconds=60)   # a failed upload can be claimed again
    assert redrive.owned and (redrive.attempts, redrive.record.notified_status) == (2, "failed")
    record = store.finish(redrive, _completed(), now=T + 101, notify_lease_seconds=60)
    assert (record.status, record.notified_status, record.notified) == ("completed", "failed", False)
    assert store.record_failure(A, "st-mary", fault="x", now=T + 1000) is None     # a result stands


def test_only_records_processing_past_their_lease_and_the_grace_are_stuck(store: Any) -> None:
    C = Upload("in-bucket", "incoming/north-gen/c.png", "v3")
    dead = store.claim(A, "st-mary", now=T, lease_seconds=60)               # lease ends T + 60, never finished
    store.release(store.claim(B, None, now=T, lease_seconds=60))            # released: lease_until 0
    store.finish(store.claim(C, "north-gen", now=T, lease_seconds=60), _completed(), now=T + 1)
    assert [r.upload_id for r in store.stuck(now=T + 100, older_than_s=360, limit=10)] == [B.upload_id]
    stuck = store.stuck(now=T + 421, older_than_s=360, limit=10)            # oldest lease first
    assert [r.upload_id for r in stuck] == [B.upload_id, A.upload_id]
    r = stuck[1]        # enough of the record to rebuild its upload and settle it
    assert (r.status, r.hospital_id, r.bucket, r.key, r.version_id, r.lease_until) == (
        "processing", "st-mary", A.bucket, A.key, "v1", dead.record.lease_until)
    assert len(store.stuck(now=T + 421, older_than_s=360, limit=1)) == 1
    store.record_failure(A, "st-mary", fault="x", now=T + 421)              # failed: out of the index
    store.claim(B, None, now=T + 421, lease_seconds=60)                     # claimed again: a live lease
    assert store.stuck(now=T + 421, older_than_s=360, limit=10) == []


# -- ObjectReader -----------------------------------------------------------------------------------
@pytest.fixture(params=["memory", "s3"])
def objects(request: pytest.FixtureRequest) -> tuple[Any, Any, Any]:
    """(reader, put(key, data, metadata) -> version id, reader with a 3-byte limit)."""
    if request.param == "memory":
        reader = InMemoryObjects()
        small = InMemoryObjects(max_bytes=3)
        small._versions = reader._versions      # the same bucket behind both limits

        def put(key: str, data: bytes, metadata: dict[str, str]) -> str:
            return reader.put("in-bucket", key, data, metadata)

        return reader, put, small
    aws = request.getfixturevalue("aws")

    def put_s3(key: str, data: bytes, metadata: dict[str, str]) -> str:
        return str(aws.clients.s3.put_object(Bucket="in-bucket", Key=key, Body=data, Metadata=metadata)["VersionId"])

    return ObjectReader(aws.clients.s3, max_bytes=1000), put_s3, ObjectReader(aws.clients.s3, max_bytes=3)


def test_the_reader_returns_the_named_version_with_its_metadata_and_rejects_what_it_cannot_read(objects: Any) -> None:
    reader, put, small = objects
    old = put("incoming/h/x.png", b"first", {"Sex": "F"})
    new = put("incoming/h/x.png", b"second", {"Age-Months": "126"})
    assert reader.current_version("in-bucket", "incoming/h/x.png") == new
    assert reader.current_version("in-bucket", "incoming/h/none.png") is None
    fetched = reader.fetch("in-bucket", "incoming/h/x.png", old)
    assert (fetched.data, fetched.version_id, fetched.metadata) == (b"first", old, {"sex": "F"})
    assert reader.fetch("in-bucket", "incoming/h/x.png", None).data == b"second"
    with pytest.raises(Rejection) as missing:
        reader.fetch("in-bucket", "incoming/h/none.png", None)
    assert missing.value.reason == "object_not_found"
    with pytest.raises(Rejection) as large:
        small.fetch("in-bucket", "incoming/h/x.png", new)
    assert (large.value.reason, large.value.message) == ("too_large", "the upload is 6 bytes; the limit is 3 bytes")


def test_whole_numbers_from_the_table_come_back_as_the_floats_the_result_declares() -> None:
    """DynamoDB normalises numbers (178.0 is returned as "178"; the emulator keeps "178.0"), so the
    adapter's mapping, not the wire, decides the Python type."""
    from boneage.adapters.store import _unmarshal, record_from_item

    wire = {"upload_id": {"S": "u"}, "status": {"S": "completed"}, "attempts": {"N": "1"},
            "bone_age_months": {"N": "178"}, "bone_age_interval_months": {"L": [{"N": "169"}, {"N": "187.5"}]},
            "timings_ms": {"M": {"model": {"N": "12"}}}, "mirrored": {"BOOL": False}, "sds": {"NULL": True},
            "report_keys": {"M": {"report.png": {"S": "k"}}}, "lease_until": {"N": "0"}}
    record = record_from_item(_unmarshal(wire))
    assert (record.attempts, record.lease_until, record.report_keys) == (1, 0, {"report.png": "k"})
    result = record.result
    assert result is not None and (result.bone_age_months, result.sds, result.mirrored) == (178.0, None, False)
    assert type(result.bone_age_months) is float
    assert [type(v) for v in result.bone_age_interval_months] == [float, float]
    assert type(result.timings_ms["model"]) is float and type(record.attempts) is int
