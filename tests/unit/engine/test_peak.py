"""The peak probe reports each probe's rate and the best of them, per precision."""

from __future__ import annotations

import pytest
import torch

from boneage.engine.peak import probe


def test_peak_is_the_best_of_gemm_and_convolution_probes() -> None:
    torch.set_num_threads(1)
    rates = probe("fp32", repeats=1, min_seconds=0.05)
    assert set(rates) == {"gemm_2048", "conv1x1_512", "conv3x3_256", "conv3x3_128", "peak"}
    assert all(v > 0 for v in rates.values())
    assert rates["peak"] == max(v for k, v in rates.items() if k != "peak")


def test_int8_peak_is_measured_through_a_quantised_compiled_convolution() -> None:
    pytest.importorskip("torchao")
    torch.set_num_threads(1)
    rates = probe("int8", repeats=2, min_seconds=0.05)
    assert set(rates) == {"int8_conv3x3_256", "peak"}
    # A quantised kernel that silently fell back to a reference path would run at a few GOP/s.
    assert rates["peak"] > 5.0
