"""The decode bench (``boneage.bench.decode``) runs end to end and reports what ``make bench`` files under ``decode``."""

from __future__ import annotations

import numpy as np

from boneage.bench import decode, decoders
from boneage.imaging import testing


def test_decode_bench_reports_every_format_with_goals():
    report = decode.run_decode_bench(repeats=1, rows=250, columns=204)   # tiny: schema, not speed
    formats = report["formats"]
    assert {"dicom_uncompressed", "dicom_jpeg2000_lossless@512", "dicom_jpeg_ls_lossless", "dicom_rle",
            "dicom_jpeg_lossless_sv1", "dicom_htj2k_lossless", "png_16bit", "jpeg_8bit"} <= set(formats)
    for name, goal in decode.GOALS_MS.items():
        assert formats[name]["goal_ms"] == goal and isinstance(formats[name]["meets_goal"], bool)
    assert all(f["cpu_median_ms"] > 0 and f["output_shape"][0] <= 250 for f in formats.values())
    assert isinstance(report["goals_met"], bool)


def test_each_row_names_the_decoder_that_ran_and_its_isa_class_target():
    report = decode.run_decode_bench(repeats=1, rows=250, columns=204)
    formats = report["formats"]
    assert {"dicom_jpeg_baseline_8bit", "dicom_jpeg_extended_12bit", "dicom_deflated", "dicom_jpeg2000_lossy",
            "dicom_htj2k_lossy", "png_16bit"} <= set(formats)
    for name in ("dicom_jpeg_lossless_sv1", "dicom_jpeg_extended_12bit", "dicom_jpeg_baseline_8bit"):
        assert formats[name]["decoder"].startswith("libjpeg-turbo 3."), name
    assert formats["dicom_jpeg_ls_lossless"]["decoder"].startswith("CharLS")
    assert formats["png_16bit"]["decoder"] == "libpng + zlib-ng (imagecodecs)"
    assert formats["dicom_jpeg_lossless_sv1"]["target_ms"] == 60.0
    assert formats["dicom_jpeg_lossless_sv1"]["meets_target"] is not None      # judged on every class
    isa = report["host"]["isa_class"]
    for row in formats.values():
        assert row["isa_class"] == isa
        if row["target_isa_class"] not in ("any", isa):
            assert row["meets_target"] is None


def test_a_slow_row_without_reduced_decode_is_at_the_library_floor_with_evidence():
    img = testing.radiograph_like(np.random.default_rng(1), 64, 48, bits=16)
    png = testing.png_bytes(img)
    verdict = decoders.floor("png_16bit", png, median=5.0, target=0.001, rest_ms=1.0, repeats=1)
    assert verdict["at_library_floor"] is True
    evidence = verdict["floor_evidence"]
    assert set(evidence["decode_only_cpu_median_ms"]) == {"libpng + zlib-ng (imagecodecs)", "Pillow (libpng + zlib)"}
    # A generous target: the fastest library leaves room, so the row is not at the floor.
    assert decoders.floor("png_16bit", png, median=5.0, target=1e6, rest_ms=1.0, repeats=1)["at_library_floor"] is False
    # JPEG 2000 has reduced-resolution decoding: never at the floor, whatever the time.
    assert decoders.floor("dicom_jpeg2000_lossless", b"", median=500.0, target=1.0, rest_ms=1.0,
                          repeats=1) == {"at_library_floor": False}
