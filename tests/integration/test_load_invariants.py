"""The load test's invariants at a small size (``make bench`` runs it at 1,000 uploads and reports timings):
concurrent uploaders, duplicate deliveries and hostile files against several function workers, through
the live local deployment."""

from __future__ import annotations

import pytest

from boneage.bench.load import LoadPlan, run_load

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_upload_under_load_ends_in_one_terminal_record_and_one_notification():
    load = run_load(LoadPlan(uploads=60, uploaders=3, workers=2, hospitals=("it-load-a", "it-load-b"),
                             timeout_s=600))
    assert (load["duplicates"], load["hostile"], load["object_versions"]) == (12, 3, 48)
    assert load["terminal_records"] == 48 and load["unexpected_records"] == 0
    assert load["notifications"] == 48 and load["uploads_notified_more_than_once"] == 0
    assert load["uploads_never_notified"] == 0 and load["dead_lettered"] == 0
    assert load["records_by_status"].get("rejected", 0) >= 3      # the hostile files at least
    assert load["every_upload_one_record_one_notification"] is True
