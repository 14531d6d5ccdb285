"""Evaluation arithmetic on known inputs, QC tallies and the robustness perturbations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from boneage.model.evaluation import off_centre_crop, perturbations, qc_rates, qc_summary, regression_metrics, rotate
from boneage.model.types import ModelOutput, QcRejection


def test_regression_metrics_on_known_errors():
    truth = [10.0, 30.0, 100.0, 200.0]
    pred = [12.0, 26.0, 100.0, 215.0]          # errors +2, -4, 0, +15
    lo = [0.0, 27.0, 90.0, 190.0]
    hi = [20.0, 40.0, 110.0, 199.0]            # covers 10 and 100 only (30 < lo 27? no: 30 in; 200 > 199)
    m = regression_metrics(truth, pred, lo, hi, [True, False, True, None])
    assert m["n"] == 4
    assert m["mae_months"] == pytest.approx(21 / 4)
    assert m["rmse_months"] == pytest.approx(math.sqrt((4 + 16 + 0 + 225) / 4), abs=1e-3)
    assert m["within_12_months"] == 0.75
    assert m["coverage_90"] == 0.75
    assert m["bias_months"] == pytest.approx(13 / 4)
    assert m["by_sex"]["M"] == {"n": 2, "bias_months": 1.0, "mae_months": 1.0}
    assert m["by_sex"]["F"] == {"n": 1, "bias_months": -4.0, "mae_months": 4.0}
    assert m["by_age_band"]["0-24"]["n"] == 1 and m["by_age_band"]["168-240"]["bias_months"] == 15.0
    assert m["by_age_band"]["60-120"]["bias_months"] == 0.0


def _out(reason=None, mirrored=False):
    o = ModelOutput(None if reason else 50.0, None, None)
    o.rejection = QcRejection(reason, "x") if reason else None
    o.qc["mirrored"] = mirrored
    return o


def test_qc_summary_counts_outcomes_per_kind():
    kinds = ["left", "left", "left", "right", "right", "two_hands", "non_hand", "non_hand", "adult"]
    outs = [_out(), _out("no_hand_found"), _out("skeletally_mature"), _out(mirrored=True), _out(), _out("multiple_hands"),
            _out("no_hand_found"), _out(), _out("skeletally_mature")]
    q = qc_summary(kinds, outs)
    assert q["confusion"]["left"] == {"completed": 1, "no_hand_found": 1, "skeletally_mature": 1}
    assert q["left_found_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert q["left_completed_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert q["right_mirrored_rate"] == 0.5
    assert q["two_hands_rejected_rate"] == 1.0
    assert q["non_hand_rejected_rate"] == 0.5
    assert q["adult_mature_rate"] == 1.0


def test_qc_rates_name_the_gated_rejection_rates_with_valid_hands_by_age_band():
    kinds = ["left", "left", "right", "left", "adult", "adult", "non_hand", "two_hands", "two_hands"]
    ages = [10.0, 200.0, 205.0, 100.0, 240.0, 250.0, 50.0, 90.0, 90.0]
    outs = [_out(), _out("skeletally_mature"), _out(), _out(), _out("skeletally_mature"), _out(),
            _out("no_hand_found"), _out("multiple_hands"), _out()]
    outs[2].qc["near_skeletal_maturity"] = True
    q = qc_rates(kinds, ages, outs)
    assert q["valid_n"] == 4 and q["valid_rejected_rate"] == 0.25
    assert q["valid_rejected_rate_by_age_band"] == {"0-24": 0.0, "24-60": None, "60-120": 0.0, "120-168": None,
                                                    "168-240": 0.5}
    assert q["valid_near_maturity_assessed"] == 1
    assert q["adult_rejected_rate"] == 0.5 and q["non_hand_rejected_rate"] == 1.0
    assert q["two_hands_rejected_rate"] == 0.5


def test_off_centre_crop_shifts_content_and_leaves_a_black_border():
    img = np.ones((100, 80), np.float32)
    out = off_centre_crop(img, 0.1)
    assert out.shape == img.shape
    assert out[:10].max() == 0 and out[:, :8].max() == 0 and out[10:, 8:].min() == 1


def test_rotation_keeps_the_whole_film():
    img = np.ones((100, 60), np.float32)
    out = rotate(img, 25.0)
    assert out.shape[0] > 100 and out.shape[1] > 60
    assert out.sum() == pytest.approx(img.sum(), rel=0.02)


def test_every_acceptance_perturbation_is_present_and_changes_the_image():
    img = np.random.default_rng(0).random((64, 48), dtype=np.float32)
    p = perturbations()
    assert set(p) == {"rotation_25", "mirror", "inversion", "gamma_0.6", "gamma_1.6", "noise_0.05",
                      "off_centre_crop"}
    for name, fn in p.items():
        out = fn(img, 0)
        assert out.dtype == np.float32 or name.startswith("gamma"), name
        assert out.shape != img.shape or not np.allclose(out, img), name


def test_calibration_recovers_a_known_linear_tilt_and_the_90_percent_scale():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 216, 4000)
    raw = 30.0 + 0.8 * truth                     # regression to the mean: true = -37.5 + 1.25 raw
    noise = rng.normal(0, 5.0, truth.size)
    fit = __import__("boneage.model.evaluation", fromlist=["fit_calibration"]).fit_calibration(
        truth + noise, raw, np.full(truth.size, 4.0), z=1.6449)
    a, b = fit["age_correction"]
    assert b == pytest.approx(1.25, rel=0.02) and a == pytest.approx(-37.5, abs=1.5)
    # corrected errors are N(0, 5); the 90 % half-width is 1.645 * 5 = z * |b| * 4 * scale -> scale = 1.0
    assert fit["interval_scale"] == pytest.approx(1.0, rel=0.05)


def test_mature_threshold_is_the_lowest_that_spares_children_in_every_age_band():
    from boneage.model.evaluation import fit_mature_threshold

    # 100 children per band; in the oldest band the maturity probability climbs to 0.9.
    ages = np.concatenate([np.full(100, 12.0), np.full(100, 200.0)])
    child_p = np.concatenate([np.full(100, 0.1), np.linspace(0.0, 0.9, 100)])
    adult_p = np.linspace(0.6, 1.0, 50)
    fit = fit_mature_threshold(ages, child_p, adult_p, target=0.02)
    oldest = child_p[100:]
    assert np.mean(oldest >= fit["mature_threshold"]) <= 0.02
    assert np.mean(oldest >= fit["mature_threshold"] - 1e-3) > 0.02      # the lowest that does
    assert fit["children_rejected_by_age_band"] == {"0-24": 0.0, "168-240": 0.02}
    assert fit["adults_rejected"] == pytest.approx(np.mean(adult_p >= fit["mature_threshold"]))


def test_calibration_fits_the_mature_threshold_to_half_the_gate():
    """Fitted to the gate's own 2 %, a threshold rejects children at the gate's rate on calibration, and a
    held-out band crosses it by chance; by default the fit keeps to half of it."""
    from boneage.model.evaluation import MATURE_CHILDREN_TARGET, fit_mature_threshold

    ages = np.full(200, 200.0)
    child_p = np.linspace(0.0, 0.9, 200)
    adult_p = np.linspace(0.6, 1.0, 50)
    at_gate = fit_mature_threshold(ages, child_p, adult_p, target=MATURE_CHILDREN_TARGET)
    fit = fit_mature_threshold(ages, child_p, adult_p)
    assert fit["target"] == MATURE_CHILDREN_TARGET / 2
    assert fit["children_rejected_by_age_band"]["168-240"] == 0.01 < at_gate["children_rejected_by_age_band"]["168-240"]
    assert fit["mature_threshold"] > at_gate["mature_threshold"]
    assert fit["adults_rejected"] <= at_gate["adults_rejected"]


def test_mature_threshold_never_drops_below_one_half():
    from boneage.model.evaluation import fit_mature_threshold

    fit = fit_mature_threshold([100.0] * 10, [0.01] * 10, [0.2, 0.3])
    assert fit["mature_threshold"] == 0.5 and fit["adults_rejected"] == 0.0 and fit["target_met"]


def test_mature_threshold_says_when_no_threshold_spares_the_children():
    from boneage.model.evaluation import fit_mature_threshold

    fit = fit_mature_threshold([200.0] * 10, [0.2] * 9 + [1.0], [1.0, 1.0])   # one child certain to be taken
    assert fit["mature_threshold"] == 1.0 and fit["target_met"] is False


def test_mature_threshold_also_spares_the_children_under_each_perturbation():
    from boneage.model.evaluation import fit_mature_threshold

    # Clean, no child reaches 0.5; under noise the oldest band's probabilities rise to 0.8.
    ages = np.full(100, 200.0)
    clean = np.linspace(0.0, 0.4, 100)
    noisy = np.linspace(0.0, 0.8, 100)
    adult_p = np.linspace(0.5, 1.0, 50)
    plain = fit_mature_threshold(ages, clean, adult_p, target=0.02)
    fit = fit_mature_threshold(ages, clean, adult_p, target=0.02, perturbed={"noise": (ages, noisy)})
    assert plain["mature_threshold"] == 0.5
    assert np.mean(noisy >= fit["mature_threshold"]) <= 0.02 < np.mean(noisy >= fit["mature_threshold"] - 1e-3)
    assert fit["children_rejected_worst_perturbed"] == 0.02 and fit["children_rejected_by_age_band"] == {"168-240": 0.0}
    assert fit["adults_rejected"] < plain["adults_rejected"]


def test_score_threshold_lies_midway_between_the_highest_non_hand_and_the_valid_hands_low_tail():
    from boneage.model.evaluation import fit_score_threshold

    valid = {"clean": [0.99, 0.98, 0.97, 0.95] * 50, "noise": [0.99, 0.9, 0.8, 0.7] * 50}
    non_hand = {"clean": [0.25, 0.21, None, None], "noise": [0.3, None, None, None]}
    fit = fit_score_threshold(valid, non_hand, current=0.83, target=0.0)
    # The worst condition on each side: noise's lowest valid hand (0.7), noise's highest non-hand (0.3).
    assert fit["score_threshold"] == pytest.approx(0.5) and fit["overlap"] is False
    assert (fit["valid_low_quantile"], fit["highest_non_hand"]) == (0.7, 0.3)
    assert fit["valid_lost"] == {"clean": 0.0, "noise": 0.0}
    assert fit["non_hand_as_one_hand"] == {"clean": 0.0, "noise": 0.0}
    # No non-hand film reached the reported floor (0.2): the threshold is measured from the floor.
    assert fit_score_threshold(valid, {"clean": [None] * 4}, 0.83, target=0.0)["score_threshold"] == pytest.approx(0.45)


def test_score_threshold_counts_undetected_hands_as_lost_without_letting_them_drag_the_quantile():
    from boneage.model.evaluation import fit_score_threshold

    valid = {"clean": [0.95] * 196 + [None] * 4}
    fit = fit_score_threshold(valid, {"clean": [0.3]}, current=0.83)
    assert fit["valid_low_quantile"] == 0.95 and fit["score_threshold"] == pytest.approx(0.625)
    assert fit["valid_undetected"] == {"clean": 0.02} and fit["valid_lost"] == {"clean": 0.02}


def test_score_threshold_is_kept_where_no_threshold_separates_the_two_sides():
    from boneage.model.evaluation import fit_score_threshold

    valid = {"clean": [0.9, 0.6, 0.95, 0.92] * 50}
    for non_hand in ({"clean": [0.7, None]}, {"rotation": [0.6]}):
        fit = fit_score_threshold(valid, non_hand, current=0.83, target=0.0)
        assert fit["overlap"] is True and fit["score_threshold"] == 0.83
    # No valid hand detected at all.
    fit = fit_score_threshold({"clean": [None] * 10}, {"clean": [0.3]}, current=0.83)
    assert fit["overlap"] is True and fit["score_threshold"] == 0.83 and fit["valid_lost"] == {"clean": 1.0}


def test_second_hand_scores_are_read_at_the_new_hand_threshold_from_the_reported_scores():
    from types import SimpleNamespace

    from boneage.model.evaluation import _second_hand_scores

    def out(best, second):
        # What a run at a higher hand threshold (0.83) reports: the scores, whatever was counted.
        return SimpleNamespace(qc={"detection_score": best, "second_hand_score": second,
                                   "hand_count": int(best is not None and best >= 0.83)})

    films = [out(0.95, 0.3), out(0.75, 0.25), out(0.75, None), out(0.6, 0.3), out(None, None), out(0.9, 0.8)]
    # At 0.74: the 0.75 films are found alone (not counted at 0.83); 0.6 is not found; a second at 0.8
    # counts as a hand at any second-hand threshold, so that film is not "alone".
    assert _second_hand_scores(films, 0.74) == [0.3, 0.25, None, None, None, None]


def test_second_hand_threshold_lies_midway_between_the_valid_hands_highest_second_detection_and_the_hand_threshold():
    from boneage.model.evaluation import fit_second_hand_threshold

    valid = {"clean": [None, None, 0.3, None] * 50, "rotation": [None, 0.43, 0.25, None] * 50}
    two_hands = {"clean": [0.82, None], "rotation": [0.78, 0.5]}
    fit = fit_second_hand_threshold(valid, two_hands, score_threshold=0.83)
    assert fit["second_hand_threshold"] == pytest.approx((0.43 + 0.83) / 2)
    assert fit["highest_valid_second"] == 0.43
    assert fit["valid_as_two_hands"] == {"clean": 0.0, "rotation": 0.0}
    assert fit["two_hands_seen_as_one_caught"] == {"clean": 0.5, "rotation": 0.5}
    # No valid hand with a second detection (none at or above the reported floor, 0.2): midway from the
    # floor. One above the hand threshold: the threshold itself.
    assert fit_second_hand_threshold({"clean": [None] * 4}, {}, 0.8)["second_hand_threshold"] == pytest.approx(0.5)
    assert fit_second_hand_threshold({"clean": [0.9, None]}, {}, 0.83)["second_hand_threshold"] == 0.83


class _CappingAssessor:
    """Reads each film's true bone age from its pixels and reports it the way the pipeline does above
    the top of the reference: ``bone_age_months`` capped, the estimate in ``qc``."""
    def __init__(self) -> None:
        from boneage.model.configs import CONFIGS

        self.cfg = CONFIGS["demo"].with_updates(age_correction=(0.0, 1.0))

    def with_config(self, cfg):
        return self

    def assess_batch(self, images, sexes):
        from boneage.model.pipeline import REFERENCE_TOP_MONTHS

        outs = []
        for im, sex in zip(images, sexes):
            age = float(round(im[0, 0] * 255))
            o = ModelOutput(min(age, REFERENCE_TOP_MONTHS[sex]), None, sex)
            o.qc["sigma_months"] = 6.0
            o.qc["mature_probability"] = 0.01
            if age > REFERENCE_TOP_MONTHS[sex]:
                o.qc["bone_age_estimate_months"] = age
            outs.append(o)
        return outs


def test_calibration_fits_the_estimate_before_the_reference_cap(tmp_path):
    """A hand past the top of the reference is reported at the cap; the age correction is fitted on the
    model's estimate, so an exact model keeps an identity correction (fitted on the capped values, the
    oldest films read young and tilt it to -1.09 + 1.014x)."""
    from PIL import Image

    from boneage.model.evaluation import calibrate_folder

    (tmp_path / "images").mkdir()
    ages = list(range(12, 240, 6))                  # 38 films; girls of 222 and 234 past their 216 cap
    lines = ["id,boneage,male,kind"]
    for i, age in enumerate(ages):
        Image.fromarray(np.full((8, 8), age, np.uint8)).save(tmp_path / "images" / f"{i}.png")
        lines.append(f"{i},{age},{i % 2 == 0},left")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    fit = calibrate_folder(tmp_path, _CappingAssessor())
    assert fit["n"] == len(ages)
    assert fit["age_correction"] == pytest.approx([0.0, 1.0], abs=1e-3)
    assert fit["mae_before_months"] == pytest.approx(0.0, abs=1e-6)
