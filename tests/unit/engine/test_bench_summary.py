"""The benchmark's arithmetic: efficiency per artifact on its own FLOPs, and the accuracy gate that
keeps a fast but wrong artifact from becoming the default."""

from __future__ import annotations

import pytest

from boneage.bench.oracle import OracleDecisions
from boneage.bench.summary import best_stock, summarise

PEAKS = {"fp32": {"peak": 200.0}, "int8": {"peak": 400.0}}
LABELS = [100.0, 120.0, 140.0, 160.0]


def _row(p50: float, ages: list[float], assessed: list[float | None] | None = None) -> dict:
    # sigma 6 months: the 90 % interval is +- 9.87 months, so a mean change up to 0.987 months is allowed
    row = {"p50_ms": p50, "regressor_ages": ages, "regressor_sigmas": [6.0] * len(ages)}
    if assessed is not None:                       # trained weights: assessed ages and their labels
        row.update(assessed_ages=assessed, labels=LABELS)
    return row


def test_on_trained_weights_the_fastest_accurate_artifact_wins() -> None:
    ref = [101.0, 119.0, 141.0, 159.0]
    rows = {
        "eager-fp32": _row(200.0, ref, ref),
        "aoti-fp32": _row(100.0, ref, ref),
        # faster, but the MAE got 1 month worse: not eligible
        "aoti-int8": _row(50.0, [a + 2 for a in ref], [103.0, 121.0, 143.0, 161.0]),
    }
    gflops = {"eager-fp32": 20.0, "aoti-fp32": 15.0, "aoti-int8": 15.0}
    out = summarise("demo", rows, gflops, PEAKS)
    assert rows["aoti-int8"]["accurate_enough"] is False and rows["aoti-fp32"]["accurate_enough"] is True
    assert rows["aoti-int8"]["phantom_mae_delta_months"] == pytest.approx(1.0)
    assert out["best_backend"] == "aoti-fp32" and out["speedup_vs_eager"] == 2.0
    assert out["compute_efficiency"] == pytest.approx(15.0 / 0.1 / 200.0, abs=1e-3)
    assert out["gflop_per_image"] == 15.0 and out["gflop_per_image_eager"] == 20.0
    assert best_stock(out) == "aoti-fp32"


def test_per_image_changes_beyond_a_tenth_of_the_interval_fail_even_with_the_same_mae() -> None:
    ref = [101.0, 119.0, 141.0, 159.0]
    moved = [99.0, 121.0, 139.0, 161.0]             # every image 2 months off, MAE unchanged
    rows = {"eager-fp32": _row(200.0, ref, ref), "aoti-int8": _row(50.0, moved, moved)}
    out = summarise("demo", rows, {"eager-fp32": 1.0, "aoti-int8": 1.0}, PEAKS)
    assert rows["aoti-int8"]["phantom_mae_delta_months"] == 0.0
    assert rows["aoti-int8"]["mean_assessed_delta_months"] == 2.0
    assert rows["aoti-int8"]["output_delta_allowed_months"] == pytest.approx(0.987, abs=1e-3)
    assert rows["aoti-int8"]["accurate_enough"] is False and out["best_backend"] == "eager-fp32"


def test_qc_decisions_that_change_are_counted() -> None:
    ref = [101.0, 119.0, 141.0, 159.0]
    rows = {"eager-fp32": _row(200.0, ref, ref), "aoti-int8": _row(50.0, ref, [101.0, None, 141.0, 159.0])}
    summarise("demo", rows, {"eager-fp32": 1.0, "aoti-int8": 1.0}, PEAKS)
    assert rows["aoti-int8"]["decisions_changed"] == 1


def test_the_mature_logit_is_compared_with_the_ages() -> None:
    """The regressor's fourth output (the wrist stage's logit, where the config has one) decides
    'skeletally mature'; its largest change against fp32 eager is reported beside the age deltas."""
    ref = [101.0, 119.0, 141.0, 159.0]
    rows = {"eager-fp32": dict(_row(200.0, ref, ref), regressor_mature_logits=[-3.0, -1.0, 0.5, 2.0]),
            "aoti-int8": dict(_row(50.0, ref, ref), regressor_mature_logits=[-3.1, -1.0, 0.9, 2.0]),
            "aoti-fp32": _row(100.0, ref, ref)}                              # a worker from before the field
    summarise("demo", rows, {k: 1.0 for k in rows}, PEAKS)
    assert rows["aoti-int8"]["max_mature_logit_delta"] == pytest.approx(0.4)
    assert rows["eager-fp32"]["max_mature_logit_delta"] == 0.0
    assert "max_mature_logit_delta" not in rows["aoti-fp32"]


def test_the_assessed_films_maturity_probability_is_compared_where_both_reached_the_regressor() -> None:
    ref = [101.0, 119.0, 141.0, 159.0]
    rows = {"eager-fp32": dict(_row(200.0, ref, ref), assessed_mature_probabilities=[0.1, None, 0.5, 0.9]),
            "aoti-int8": dict(_row(50.0, ref, ref), assessed_mature_probabilities=[0.12, 0.3, 0.44, None])}
    summarise("demo", rows, {k: 1.0 for k in rows}, PEAKS)
    assert rows["aoti-int8"]["max_mature_probability_delta"] == pytest.approx(0.06)
    assert rows["aoti-int8"]["accurate_enough"] is True                      # reported, not gated


def test_random_weights_are_not_judged_and_int8_is_rated_against_the_int8_peak() -> None:
    rows = {"eager-fp32": _row(200.0, [127.0, 127.1, 127.2]), "aoti-int8": _row(50.0, [126.2, 126.3, 126.4])}
    out = summarise("clinical", rows, {"eager-fp32": 20.0, "aoti-int8": 15.0}, PEAKS)
    assert rows["aoti-int8"]["accurate_enough"] is None
    assert rows["aoti-int8"]["mean_output_delta_months"] == pytest.approx(0.8)      # reported all the same
    assert out["best_backend"] == "aoti-int8" and out["speedup_vs_eager"] == 4.0
    assert out["compute_efficiency"] == pytest.approx(15.0 / 0.05 / 400.0, abs=1e-3)


def test_oracle_decisions_let_random_weights_reach_the_regressor_at_the_true_box() -> None:
    """Random weights find no hand; the end-to-end bench keeps their compute but takes the phantom's
    box, so regression (and later stages) run. The box the pipeline reports must be the true one."""
    import numpy as np
    import torch

    from boneage.engine import weights
    from boneage.phantom import render_sample

    torch.set_num_threads(1)
    src = weights.random_weights("demo", seed=3)
    det, reg = (src.stages[s].module for s in ("detector", "regressor"))
    assessor = weights.make_assessor(src.model_config, det, reg, src.model_version, True)
    image, labels = render_sample(np.random.default_rng(8), kind="left", size=256)
    assert assessor.assess(image, "F").rejection is not None                 # random weights alone
    oracle = OracleDecisions(assessor.cfg)
    with_oracle = assessor.with_decisions(oracle)
    oracle.next_box(labels["hand_boxes"][0], 256)
    out = with_oracle.assess(image, "F")
    assert out.rejection is None and out.bone_age_months is not None
    got = np.array([out.hand_box.x0, out.hand_box.y0, out.hand_box.x1, out.hand_box.y1])
    assert np.abs(got - np.array(labels["hand_boxes"][0])).max() < 2.0
    # An injection point, not a patch: the assessor it came from still decides for itself.
    assert assessor.decisions is None and assessor.assess(image, "F").rejection is not None
