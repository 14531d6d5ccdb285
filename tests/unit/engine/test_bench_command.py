"""``boneage bench``: one JSON line per config with the headline keys, and a typed error, not a
traceback, when there is no report to read."""

from __future__ import annotations

import json

from boneage.bench.summary import summarise
from boneage.cli import main


def test_existing_report_prints_one_json_line_per_config_and_decode(tmp_path, capsys):
    ref = {"p50_ms": 200.0, "regressor_ages": [120.0], "regressor_sigmas": [6.0]}
    fast = {"p50_ms": 50.0, "regressor_ages": [120.5], "regressor_sigmas": [6.0]}
    clinical = summarise("clinical", {"eager-fp32": ref, "aoti-int8": fast},
                               {"eager-fp32": 16.9, "aoti-int8": 15.3}, {"fp32": {"peak": 190.0}, "int8": {"peak": 300.0}})
    clinical.update(e2e_p50_ms=160.0, e2e_p50_ms_avx2=170.0)
    report = {"configs": ["clinical"], "clinical": clinical,
              "decode": {"formats": {"dicom_uncompressed": {"cpu_median_ms": 21.0, "goal_ms": 60.0, "meets_goal": True}}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert main(["bench", "--existing", "--out", str(tmp_path), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["config"] == "clinical" and lines[0]["best_backend"] == "aoti-int8"
    assert lines[0]["speedup_vs_eager"] == 4.0 and lines[0]["e2e_p50_ms_avx2"] == 170.0
    assert set(lines[0]) >= {"eager_fp32_p50_ms", "best_p50_ms", "compute_efficiency", "cold_start_s",
                             "peak_rss_mb", "e2e_p50_ms"}
    assert lines[1]["decode"]["dicom_uncompressed"]["meets_goal"] is True


def test_missing_report_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    assert main(["bench", "--existing", "--out", str(tmp_path / "nothing"), "--json"]) == 2
    err = capsys.readouterr().err
    assert "no readable report" in err and "Traceback" not in err
