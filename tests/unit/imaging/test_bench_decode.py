"""The decode bench (``boneage.bench.decode``) runs end to end and reports what ``make bench`` files under ``decode``."""

from __future__ import annotations

from boneage.bench import decode


def test_decode_bench_reports_every_format_with_goals():
    report = decode.run_decode_bench(repeats=1, rows=250, columns=204)   # tiny: schema, not speed
    formats = report["formats"]
    assert {"dicom_uncompressed", "dicom_jpeg2000_lossless@512", "dicom_jpeg_ls_lossless", "dicom_rle",
            "dicom_jpeg_lossless_sv1", "dicom_htj2k_lossless", "png_16bit", "jpeg_8bit"} <= set(formats)
    for name, goal in decode.GOALS_MS.items():
        assert formats[name]["goal_ms"] == goal and isinstance(formats[name]["meets_goal"], bool)
    assert all(f["cpu_median_ms"] > 0 and f["output_shape"][0] <= 250 for f in formats.values())
    assert isinstance(report["goals_met"], bool)
