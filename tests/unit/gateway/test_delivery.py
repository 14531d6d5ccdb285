"""Deliveries to the PACS: fetched once, each file sent once, retried with back-off; a PACS that is down
is retried until ``max_delivery_age_s``, one that refuses is dead-lettered after ``max_delivery_attempts``
refusals, with a log line naming the resend command, and sent after ``resend``."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from boneage.gateway.delivery import Deliverer, DeliveryError
from boneage.gateway.spool import Delivery, Spool

KEYS = {"report_sc.dcm": "reports/st-mary/u1/report_sc.dcm", "report_sr.dcm": "reports/st-mary/u1/report_sr.dcm"}


class FlakyPacs:
    """Refuses the first ``down`` attempts, then stores; ``partial``: stores only the first file once."""

    def __init__(self, down: int = 0, partial: bool = False, error: DeliveryError | None = None) -> None:
        self.down = down
        self.error = error or DeliveryError("pacs_unreachable")
        self.partial = partial
        self.stored: list[bytes] = []
        self.calls = 0

    def send(self, paths: list[Path]) -> list[Path]:
        self.calls += 1
        if self.down:
            self.down -= 1
            raise self.error
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


def test_a_partial_store_restarts_the_age_limit(config, s3, setup):
    spool, now = setup
    pacs = FlakyPacs(down=1)
    d = _deliverer(config, spool, s3, pacs, now)
    d.run_once()                                    # down: failing since 1000
    (pending,) = spool.pending_deliveries()
    assert pending.failing_since == 1000.0
    pacs.partial = True
    now[0] = pending.next_attempt_at
    d.run_once()                                    # one file stored: progress
    (pending,) = spool.pending_deliveries()
    assert pending.sent == ["report_sc.dcm"] and pending.failing_since == now[0]


def _run_until(d, now, until_s: float) -> None:
    """Run the delivery loop on the fake clock, jumping to each retry as it falls due."""
    while now[0] < until_s and d.spool.pending_deliveries():
        (pending,) = d.spool.pending_deliveries()
        now[0] = max(now[0], pending.next_attempt_at)
        d.run_once()


def test_a_pacs_down_for_a_maintenance_window_does_not_dead_letter_and_gets_the_result_after(config, s3, setup):
    spool, now = setup
    config = replace(config, retry=replace(config.retry, max_backoff_s=300.0))
    pacs = FlakyPacs(down=10_000)
    d = _deliverer(config, spool, s3, pacs, now)
    _run_until(d, now, 1000.0 + 6 * 3600)                        # six hours down
    (pending,) = spool.pending_deliveries()
    assert pending.attempts > config.retry.max_delivery_attempts and pending.refusals == 0
    assert pending.next_attempt_at - now[0] <= config.retry.max_backoff_s       # capped back-off
    assert spool.status()["deliveries_retrying"] == 1 and spool.status()["deliveries_refused"] == 0
    pacs.down = 0                                                 # maintenance over
    _run_until(d, now, now[0] + 3600)
    assert spool.delivery_state("u1") == "done" and sorted(pacs.stored) == [b"report_sc.dcm", b"report_sr.dcm"]


def test_a_pacs_down_past_the_maximum_age_dead_letters_with_the_resend_command_and_resend_delivers(
        config, s3, setup, caplog):
    spool, now = setup
    config = replace(config, retry=replace(config.retry, max_delivery_age_s=72 * 3600.0, max_backoff_s=300.0))
    pacs = FlakyPacs(down=10_000)
    d = _deliverer(config, spool, s3, pacs, now)
    with caplog.at_level(logging.INFO, logger="boneage.gateway.delivery"):
        _run_until(d, now, 1000.0 + 71.9 * 3600)
        assert spool.delivery_state("u1") == "pending"
        _run_until(d, now, 1000.0 + 80 * 3600)
    assert spool.delivery_state("u1") == "dead"
    assert 72 * 3600 <= now[0] - 1000.0 <= 72 * 3600 + config.retry.max_backoff_s
    status = spool.status()
    assert status["dead_letters"] == 1 and status["dead_letters_max_age"] == 1 and status["dead_letters_refused"] == 0
    assert status["dead"][0]["dead_reason"] == "max_age" and status["dead"][0]["last_error"] == "pacs_unreachable"
    (line,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "boneage gateway resend --config /etc/boneage/gateway.json" in line.getMessage()
    assert line.upload_id == "u1" and line.dead_reason == "max_age" and line.refusals == 0
    calls = pacs.calls
    now[0] += 3600
    d.run_once()
    assert pacs.calls == calls                      # dead letters wait for the operator
    pacs.down = 0
    assert spool.resend() == ["u1"]
    (pending,) = spool.pending_deliveries()
    assert (pending.attempts, pending.refusals, pending.failing_since, pending.dead_reason) == (0, 0, 0.0, None)
    d.run_once()
    assert sorted(pacs.stored) == [b"report_sc.dcm", b"report_sr.dcm"] and spool.delivery_state("u1") == "done"


@pytest.mark.parametrize("code", ["cstore_status_0xA900", "presentation_context_not_accepted", "stow_http_400"])
def test_a_refusal_dead_letters_after_the_configured_attempts_and_resend_delivers(config, s3, setup, caplog, code):
    spool, now = setup
    assert config.retry.max_delivery_attempts == 3
    pacs = FlakyPacs(down=3, error=DeliveryError(code, permanent=True))
    d = _deliverer(config, spool, s3, pacs, now)
    with caplog.at_level(logging.INFO, logger="boneage.gateway.delivery"):
        d.run_once()
        d.run_once()                                # not due: back-off applies to refusals too
        assert pacs.calls == 1 and spool.status()["deliveries_refused"] == 1
        _run_until(d, now, now[0] + 60)
    assert pacs.calls == 3 and spool.delivery_state("u1") == "dead"
    assert now[0] - 1000.0 < 60                     # minutes, not the 72 h a PACS outage gets
    status = spool.status()
    assert status["dead_letters_refused"] == 1 and status["dead"][0]["last_error"] == code
    (line,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert line.refusals == 3 and line.dead_reason == "refused" and "boneage gateway resend" in line.getMessage()
    assert spool.resend() == ["u1"]
    d.run_once()
    assert spool.delivery_state("u1") == "done"


def test_refusals_and_outages_are_counted_apart(config, s3, setup):
    """Two refusals mixed into an outage do not reach the three that dead-letter, however many outages."""
    spool, now = setup

    class Mixed(FlakyPacs):
        def send(self, paths):
            if self.calls in (1, 4):
                self.calls += 1
                raise DeliveryError("cstore_status_0xC000", permanent=True)
            if self.calls < 19:
                self.calls += 1
                raise DeliveryError("association_rejected_transient")
            return super().send(paths)

    pacs = Mixed()
    _run_until(_deliverer(config, spool, s3, pacs, now), now, now[0] + 3600)
    assert pacs.calls == 20 and spool.delivery_state("u1") == "done"


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
