"""The benchmark's arithmetic: efficiency per artifact on its own FLOPs, and the accuracy gate that
keeps a fast but wrong artifact from becoming the default."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench  # noqa: E402

PEAKS = {"fp32": {"peak": 200.0}, "int8": {"peak": 400.0}}


def _row(p50: float, ages: list[float], assessed: list[float | None]) -> dict:
    # sigma 6 months: the 90 % interval is +- 9.87 months, so a mean change up to 0.987 months is allowed
    return {"p50_ms": p50, "regressor_ages": ages, "regressor_sigmas": [6.0] * len(ages), "assessed_ages": assessed,
            "labels": [100.0, 120.0, 140.0]}


def test_best_backend_is_the_fastest_accurate_one_and_efficiency_uses_its_own_flops() -> None:
    rows = {
        "eager-fp32": _row(200.0, [100.0, 120.0, 140.0], [101.0, 119.0, 141.0]),
        "aoti-fp32": _row(100.0, [100.0, 120.0, 140.0], [101.0, 119.0, 141.0]),
        # faster, but its answers moved by 2 months on average: not eligible
        "aoti-int8": _row(50.0, [102.0, 122.0, 142.0], [103.0, 121.0, 143.0]),
    }
    gflops = {"eager-fp32": 20.0, "aoti-fp32": 15.0, "aoti-int8": 15.0}
    out = bench.summarise("clinical", rows, gflops, PEAKS)
    assert out["best_backend"] == "aoti-fp32"
    assert out["speedup_vs_eager"] == 2.0
    assert out["compute_efficiency"] == pytest.approx(15.0 / 0.1 / 200.0, abs=1e-3)
    assert out["gflop_per_image"] == 15.0 and out["gflop_per_image_eager"] == 20.0
    assert rows["aoti-int8"]["accurate_enough"] is False
    assert rows["aoti-int8"]["mean_output_delta_months"] == 2.0
    assert rows["aoti-int8"]["output_delta_allowed_months"] == pytest.approx(0.987, abs=1e-3)
    assert bench._best_stock(out) == "aoti-fp32"


def test_a_close_int8_row_wins_and_is_rated_against_the_int8_peak() -> None:
    rows = {"eager-fp32": _row(200.0, [100.0, 120.0, 140.0], [101.0, 119.0, 141.0]),
            "aoti-int8": _row(50.0, [100.2, 119.9, 140.1], [101.1, 119.2, 140.9])}
    out = bench.summarise("clinical", rows, {"eager-fp32": 20.0, "aoti-int8": 15.0}, PEAKS)
    assert out["best_backend"] == "aoti-int8" and out["speedup_vs_eager"] == 4.0
    assert out["compute_efficiency"] == pytest.approx(15.0 / 0.05 / 400.0, abs=1e-3)
    assert out["int8_mean_output_delta_months"] == pytest.approx(0.133, abs=1e-3)


def test_trained_weights_are_also_held_to_the_mae_bar() -> None:
    """Per-image changes inside the tolerance, but the phantom MAE got 0.67 months worse: not eligible."""
    rows = {"eager-fp32": _row(200.0, [100.0, 120.0, 140.0], [100.0, 120.0, 140.0]),
            "aoti-int8": _row(50.0, [100.9, 120.9, 140.9], [100.9, 120.9, 140.2])}
    out = bench.summarise("demo", rows, {"eager-fp32": 1.0, "aoti-int8": 1.0}, PEAKS)
    assert rows["aoti-int8"]["mean_output_delta_months"] <= rows["aoti-int8"]["output_delta_allowed_months"]
    assert rows["aoti-int8"]["phantom_mae_delta_months"] == pytest.approx(0.667, abs=1e-3)
    assert out["best_backend"] == "eager-fp32"


def test_oracle_decisions_let_random_weights_reach_the_regressor_at_the_true_box() -> None:
    """Random weights find no hand; the end-to-end bench keeps their compute but takes the phantom's
    box, so regression (and later stages) run. The box the pipeline reports must be the true one."""
    import types

    import numpy as np
    import torch

    from boneage.engine import source
    from boneage.phantom import render_sample

    torch.set_num_threads(1)
    src = source.random_weights("demo", seed=3)
    det, reg = (src.stages[s].module for s in ("detector", "regressor"))
    engine = types.SimpleNamespace(assessor=source.make_assessor(src.model_config, det, reg, src.model_version, True))
    image, labels = render_sample(np.random.default_rng(8), kind="left", size=256)
    assert engine.assessor.assess(image, "F").rejection is not None          # random weights alone
    oracle = bench.OracleDecisions(engine)
    oracle.next_box(labels["hand_boxes"][0], 256)
    out = engine.assessor.assess(image, "F")
    assert out.rejection is None and out.bone_age_months is not None
    got = np.array([out.hand_box.x0, out.hand_box.y0, out.hand_box.x1, out.hand_box.y1])
    assert np.abs(got - np.array(labels["hand_boxes"][0])).max() < 2.0
