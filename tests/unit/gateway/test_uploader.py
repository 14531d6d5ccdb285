"""Uploads: PHI-free keys, once per SOP Instance UID even across a crash, retried while S3 is down."""

from __future__ import annotations

import logging

from boneage.gateway.spool import Spool, ref_for
from boneage.gateway.uploader import Uploader
from boneage.upload import upload_id_for

from .conftest import instance

UID = "1.2.826.0.1.3680043.8.498.101"
STUDY = "1.2.826.0.1.3680043.8.498.100"


def _uploader(config, s3, **kw) -> Uploader:
    return Uploader(config, Spool(config.spool_dir).create(), s3, **kw)


def test_an_instance_is_uploaded_under_a_phi_free_key_and_mapped_to_its_study(config, s3):
    up = _uploader(config, s3)
    data = instance(UID, STUDY)
    up.spool.receive(UID, data)
    assert up.run_once() == 1
    ref = ref_for(UID)
    (bucket, key), = s3.versions
    assert (bucket, key) == ("input", f"incoming/st-mary/{ref}.dcm")
    for phi in (UID, STUDY, "DOE", "MRN", "ACC"):
        assert phi not in key
    assert s3.versions[(bucket, key)] == [("v1", data)]           # the bytes as received
    entry = up.spool.uploaded_entry(ref)
    assert entry["upload_id"] == upload_id_for("input", key, "v1")
    assert entry["study_instance_uid"] == STUDY and entry["sop_instance_uid"] == UID
    assert up.spool.inbox_refs() == []


def test_the_same_instance_received_again_after_upload_is_not_uploaded_again(config, s3):
    up = _uploader(config, s3)
    up.spool.receive(UID, instance(UID))
    up.run_once()
    up.spool.receive(UID, instance(UID))
    assert up.run_once() == 0 and s3.puts == 1


def test_a_crash_after_the_put_and_before_the_ledger_makes_no_second_version(config, s3, monkeypatch):
    up = _uploader(config, s3)
    up.spool.receive(UID, instance(UID))

    def crash(*a, **k):
        raise SystemExit("killed")

    monkeypatch.setattr(up.spool, "mark_uploaded", crash)
    try:
        up.run_once()
    except SystemExit:
        pass
    restarted = _uploader(config, s3)           # a new process on the same spool
    assert restarted.spool.inbox_refs() == [ref_for(UID)]
    assert restarted.run_once() == 1
    (versions,) = s3.versions.values()
    assert len(versions) == 1                   # the conditional put refused the repeat
    assert restarted.spool.uploaded_entry(ref_for(UID))["version_id"] is None
    assert restarted.spool.inbox_refs() == []


def test_uploads_are_retried_with_growing_backoff_while_s3_is_down(config, s3, caplog):
    waits: list[float] = []
    up = _uploader(config, s3, sleep=lambda s: (waits.append(s), up.stop.set() if len(waits) > 5 else None))
    up.spool.receive(UID, instance(UID))
    s3.down = 4
    with caplog.at_level(logging.WARNING, logger="boneage.gateway.uploader"):
        up.run()
    retries = [r for r in caplog.records if r.getMessage() == "upload failed; retrying"]
    assert [r.attempt for r in retries] == [1, 2, 3, 4]
    retry = config.retry
    assert retry.initial_backoff_s / 2 <= waits[0] <= retry.initial_backoff_s
    assert all(retry.initial_backoff_s / 2 <= w <= retry.max_backoff_s for w in waits[:4])
    assert [r.retry_in_s for r in retries] == [round(w, 2) for w in waits[:4]]
    assert up.spool.inbox_refs() == [] and s3.puts == 1
    for record in caplog.records:
        assert UID not in record.getMessage() and UID not in str(vars(record))


def test_concurrent_uploads_put_each_instance_once_and_a_fault_stops_the_batch(config, s3):
    import dataclasses

    up = _uploader(dataclasses.replace(config, upload_concurrency=4), s3)
    uids = [f"{UID}.{i}" for i in range(12)]
    for uid in uids:
        up.spool.receive(uid, instance(uid))
    s3.down = 1
    try:
        up.run_once()
        raise AssertionError("the fault was swallowed")
    except ConnectionError:
        pass
    left = len(up.spool.inbox_refs())
    assert left >= 1                                    # the failed one at least is still spooled
    assert up.run_once() == left
    assert up.spool.inbox_refs() == [] and len(s3.versions) == 12
    assert all(len(v) == 1 for v in s3.versions.values())
