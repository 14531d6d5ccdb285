"""Cold start is reported against a bare ``import torch`` measured in the same run."""

from __future__ import annotations

import sys

from boneage.bench.report import markdown
from boneage.bench.worker import import_torch_s


def test_a_bare_import_torch_is_timed_in_fresh_processes() -> None:
    measured = import_torch_s(sys.executable, runs=2)
    assert len(measured["import_torch_samples_s"]) == 2
    assert measured["import_torch_s"] > 0.0
    # torch is not in this process's modules for free: each sample paid for its own import
    assert all(s >= 0.05 for s in measured["import_torch_samples_s"])


def test_the_report_states_the_cold_start_ratio_beside_the_cold_start() -> None:
    config = {"gflop_per_image": 1.0, "best_backend": "aoti-int8", "cold_start_s": 3.0, "import_torch_s": 2.5,
              "cold_start_ratio_to_import_torch": 1.2, "artifacts": {}}
    text = markdown({"host": {}, "peaks": {}, "configs": ["clinical"], "clinical": config, "skipped": [], "bench_seconds": 1})
    assert "cold start 3.0 s (1.2x a bare import torch, 2.5 s)" in text


def test_the_decode_section_is_a_table_naming_each_rows_decoder() -> None:
    decode = {"host": {"isa_class": "avx2", "load_average_1m": 1.0}, "formats": {
        "dicom_jpeg_lossless_sv1": {"decoder": "libjpeg-turbo 3.1 (imagecodecs)", "cpu_median_ms": 55.0,
                                    "target_ms": 60.0, "target_isa_class": "any", "meets_target": True}}}
    text = markdown({"host": {}, "peaks": {}, "configs": [], "skipped": [], "decode": decode, "bench_seconds": 1})
    assert "| dicom_jpeg_lossless_sv1 | libjpeg-turbo 3.1 (imagecodecs) | 55.0 | 60.0 (any) | yes |  |" in text
