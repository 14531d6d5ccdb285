"""The spool: durable before acknowledged, one entry per SOP Instance UID, states that survive a crash."""

from __future__ import annotations

import os

import pytest

from boneage.gateway.spool import DUPLICATE, RECEIVED, Delivery, Spool, SpoolLocked, ref_for

from .conftest import instance

UID = "1.2.826.0.1.3680043.8.498.101"


@pytest.fixture
def spool(tmp_path) -> Spool:
    return Spool(tmp_path / "spool").create()


def test_a_received_instance_is_fsynced_and_renamed_into_place_before_receive_returns(spool, monkeypatch):
    order: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        order.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        return real_fsync(fd)

    def replace(src, dst):
        order.append("rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    data = instance(UID)
    assert spool.receive(UID, data) == (RECEIVED, ref_for(UID))
    assert order == ["fsync-file", "rename", "fsync-dir"]
    assert spool.inbox_path(ref_for(UID)).read_bytes() == data


def test_a_write_that_fails_raises_and_leaves_nothing_behind(spool, monkeypatch):
    def broken(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        spool.receive(UID, instance(UID))
    assert spool.inbox_refs() == [] and list(spool.tmp.iterdir()) == []


def test_the_same_sop_instance_uid_is_spooled_once_before_and_after_its_upload(spool):
    ref = ref_for(UID)
    assert spool.receive(UID, instance(UID))[0] == RECEIVED
    assert spool.receive(UID, instance(UID, patient="OTHER"))[0] == DUPLICATE
    spool.mark_uploaded(ref, {"key": f"incoming/h/{ref}.dcm", "upload_id": "u1"})
    assert spool.inbox_refs() == []
    assert spool.receive(UID + " ", instance(UID))[0] == DUPLICATE      # DICOM pads UIDs; same instance
    assert spool.uploaded_entry(ref)["upload_id"] == "u1"


def test_refs_carry_no_uid(spool):
    ref = ref_for(UID)
    assert len(ref) == 32 and UID not in ref and all(c in "0123456789abcdef" for c in ref)


def test_a_delivery_is_recorded_once_whatever_state_it_reached(spool):
    d = Delivery(upload_id="u1", ref="r1", report_keys={"report_sc.dcm": "k1", "report_sr.dcm": "k2"})
    assert spool.add_delivery(d) is True
    assert spool.add_delivery(Delivery(upload_id="u1", ref="r1", report_keys={})) is False
    spool.finish_delivery(d, dead=True)
    assert spool.delivery_state("u1") == "dead"
    assert spool.add_delivery(Delivery(upload_id="u1", ref="r1", report_keys={})) is False
    assert spool.resend() == ["u1"]
    (back,) = spool.pending_deliveries()
    assert back.attempts == 0 and back.report_keys == d.report_keys
    spool.finish_delivery(back, dead=False)
    assert spool.delivery_state("u1") == "done"
    assert spool.add_delivery(Delivery(upload_id="u1", ref="r1", report_keys={})) is False


def test_status_counts_every_state(spool):
    spool.receive(UID, instance(UID))
    spool.add_delivery(Delivery(upload_id="u1", ref="r1", report_keys={}))
    d2 = Delivery(upload_id="u2", ref="r2", report_keys={}, attempts=3, last_error="pacs_unreachable")
    spool.add_delivery(d2)
    spool.finish_delivery(d2, dead=True)
    spool.record_outcome("u3", {"ref": "r3", "status": "rejected", "reason": "unsupported_modality"})
    status = spool.status()
    assert (status["pending_uploads"], status["pending_deliveries"], status["dead_letters"],
            status["rejections_and_failures"]) == (1, 1, 1, 1)
    assert status["dead"] == [{"upload_id": "u2", "ref": "r2", "attempts": 3, "refusals": 0,
                                   "last_error": "pacs_unreachable", "dead_reason": None}]
    assert status["outcomes"] == [{"upload_id": "u3", "ref": "r3", "status": "rejected",
                                   "reason": "unsupported_modality"}]
    assert status["running"] is False


def test_one_gateway_per_spool(spool, tmp_path):
    spool.lock()
    try:
        assert Spool(spool.root).running() is True
        with pytest.raises(SpoolLocked):
            Spool(spool.root).lock()
    finally:
        spool.unlock()
    assert Spool(spool.root).running() is False


def test_a_write_interrupted_by_a_crash_is_cleared_at_start(spool):
    (spool.tmp / "half.dcm.tmp").write_bytes(b"partial")
    Spool(spool.root).create()
    assert list(spool.tmp.iterdir()) == [] and spool.inbox_refs() == []
