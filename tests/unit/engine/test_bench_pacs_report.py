"""The PACS load figure's place in report.md: p50, p90, total and the exactly-once verdict, or why it is absent."""

from __future__ import annotations

from boneage.bench.report import markdown

BASE = {"host": {}, "peaks": {}, "configs": [], "skipped": [], "bench_seconds": 1}
PACS = {"instances": 100, "associations": 4, "workers": 4, "size": 256, "p50_ms": 41234.5, "p90_ms": 70123.0,
        "max_ms": 80001.2, "measured": 100, "total_s": 95.3, "throughput_per_s": 1.05, "push_s": 3.2,
        "acknowledged": 100, "every_instance_assessed_once_results_once": True, "load_average": [3.1, 3.0, 2.9]}


def test_the_pacs_section_states_p50_p90_total_and_the_exactly_once_verdict() -> None:
    text = markdown({**BASE, "pacs": PACS})
    section = text.split("## PACS (Orthanc and dcmtk)", 1)[1]
    assert "100 instances" in section and "over 4 parallel associations" in section
    assert "p50 **41234.5 ms**, p90 **70123.0 ms**" in section
    assert "**95.3 s** after the first C-STORE" in section
    assert "results in PACS once: **True**" in section


def test_a_skipped_or_failed_pacs_run_says_so_and_no_section_without_one() -> None:
    assert "skipped: Orthanc" in markdown({**BASE, "pacs": {"skipped": "Orthanc or dcmtk is not installed"}})
    assert "failed: RuntimeError: boom" in markdown({**BASE, "pacs": {"error": "RuntimeError: boom"}})
    assert "## PACS" not in markdown(BASE)
