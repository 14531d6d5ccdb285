"""Deliveries to the PACS: fetched once, each file sent once, retried with back-off, dead-lettered
after the last attempt with a log line naming the resend command, and sent after ``resend``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from boneage.gateway.delivery import Deliverer, DeliveryError
from boneage.gateway.spool import Delivery, Spool

KEYS = {"report_sc.dcm": "reports/st-mary/u1/report_sc.dcm", "report_sr.dcm": "reports/st-mary/u1/report_sr.dcm"}


class FlakyPacs:
    """Refuses the first ``down`` attempts, then stores; ``partial``: stores only the first file once."""

    def __init__(self, down: int = 0, partial: bool = False) -> None:
        self.down = down
        self.partial = partial
        self.stored: list[bytes] = []
        self.calls = 0

    def send(self, paths: list[Path]) -> list[Path]:
        self.calls += 1
        if self.down:
            self.down -= 1
            raise DeliveryError("pacs_unreachable")
        if self.partial:
            self.partial = False
            paths = paths[:1]
        self.stored += [p.read_bytes() for p in paths]
        return paths


@pytest.fixture
def setup(config, s3):
    for name, key in KEYS.items():
        s3.put_object(Bucket="results", Key=key, Body=name.encode())
    spool = Spool(config.spool_dir).create()
    spool.add_delivery(Delivery(upload_id="u1", ref="r1", report_keys=dict(KEYS)))
    now = [1000.0]
    return spool, now


def _deliverer(config, spool, s3, pacs, now) -> Deliverer:
    return Deliverer(config, spool, s3, pacs, clock=lambda: now[0], config_path="/etc/boneage/gateway.json")


def test_a_delivery_retries_while_the_pacs_is_down_then_sends_each_file_once(config, s3, setup):
    spool, now = setup
    pacs = FlakyPacs(down=1)
    d = _deliverer(config, spool, s3, pacs, now)
    d.run_once()
    (pending,) = spool.pending_deliveries()
    assert pending.attempts == 1 and pending.last_error == "pacs_unreachable"
    assert now[0] + config.retry.initial_backoff_s / 2 <= pending.next_attempt_at
    d.run_once()                                    # not due yet: nothing sent
    assert pacs.calls == 1
    now[0] = pending.next_attempt_at
    d.run_once()
    assert sorted(pacs.stored) == [b"report_sc.dcm", b"report_sr.dcm"]
    assert spool.delivery_state("u1") == "done" and not spool.delivery_dir("u1").exists()
    now[0] += 1000
    d.run_once()
    assert len(pacs.stored) == 2                    # delivered is never sent again


def test_after_a_partial_store_only_the_missing_file_is_sent(config, s3, setup):
    spool, now = setup
    pacs = FlakyPacs(partial=True)
    d = _deliverer(config, spool, s3, pacs, now)
    d.run_once()
    (pending,) = spool.pending_deliveries()
    assert pending.sent == ["report_sc.dcm"]
    now[0] = pending.next_attempt_at
    d.run_once()
    assert pacs.stored == [b"report_sc.dcm", b"report_sr.dcm"] and spool.delivery_state("u1") == "done"


def test_the_last_failed_attempt_dead_letters_with_the_resend_command_and_resend_delivers(config, s3, setup, caplog):
    spool, now = setup
    pacs = FlakyPacs(down=config.retry.max_delivery_attempts)
    d = _deliverer(config, spool, s3, pacs, now)
    with caplog.at_level(logging.INFO, logger="boneage.gateway.delivery"):
        for _ in range(config.retry.max_delivery_attempts):
            d.run_once()
            now[0] += 10
    assert spool.delivery_state("u1") == "dead" and spool.status()["dead_letters"] == 1
    (line,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "boneage gateway resend --config /etc/boneage/gateway.json" in line.getMessage()
    assert line.upload_id == "u1" and line.attempts == config.retry.max_delivery_attempts
    d.run_once()
    assert pacs.stored == []                        # dead letters wait for the operator
    assert spool.resend() == ["u1"]
    d.run_once()
    assert sorted(pacs.stored) == [b"report_sc.dcm", b"report_sr.dcm"] and spool.delivery_state("u1") == "done"


def test_results_bucket_unreachable_is_a_retried_failure_not_a_crash(config, s3, setup):
    spool, now = setup
    s3.down = 1
    d = _deliverer(config, spool, s3, FlakyPacs(), now)
    d.run_once()
    (pending,) = spool.pending_deliveries()
    assert pending.attempts == 1 and pending.last_error.startswith("results_bucket_")


def test_a_fetched_result_is_known_as_ours_before_it_is_sent(config, s3, setup):
    """The PACS may send the study back at once: the listener must already know the SC and SR are ours."""
    from pydicom import uid as dcm_uid

    from boneage.gateway.spool import ref_for

    from .conftest import instance

    spool, now = setup
    uids = {"report_sc.dcm": "1.2.826.0.1.3680043.8.498.501", "report_sr.dcm": "1.2.826.0.1.3680043.8.498.502"}
    for name, key in KEYS.items():
        s3.put_object(Bucket="results", Key=key, Body=instance(uids[name], sop_class=dcm_uid.ComprehensiveSRStorage))
    seen: list[bool] = []

    class Pacs(FlakyPacs):
        def send(self, paths):
            seen.extend(spool.is_own_result(ref_for(u)) for u in uids.values())
            return super().send(paths)

    _deliverer(config, spool, s3, Pacs(), now).run_once()
    assert seen == [True, True] and spool.delivery_state("u1") == "done"
