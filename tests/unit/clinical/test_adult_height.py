"""Bayley-Pinneau adult height prediction: table choice, range limits, hand-worked examples."""

from __future__ import annotations

import pytest

from boneage.clinical import HeightReason, predict_adult_height
from boneage.clinical.adult_height import ACCELERATED, AVERAGE, RETARDED


@pytest.mark.parametrize(
    ("sex", "ba_years", "percent"),
    # average-table points from shared/reference/domain.md (Bayley & Pinneau 1952)
    [("M", 7, 69.5), ("M", 13, 87.6), ("M", 18.5, 100.0), ("F", 6, 72.0), ("F", 11, 90.6), ("F", 18, 100.0)],
)
def test_average_table_points(sex, ba_years, percent):
    r = predict_adult_height(140.0, ba_years * 12, ba_years * 12 + 3, sex)
    assert r.percent_of_mature_height == pytest.approx(percent)
    assert r.cm == pytest.approx(140.0 / (percent / 100))
    assert r.maturity == AVERAGE and r.reason is None
    assert "Bayley-Pinneau average" in r.table


def test_hand_worked_boy_at_table_point():
    # Boy, BA 13 y, CA 12.5 y (average table), 150 cm: 150 / 0.876 = 171.23 cm.
    r = predict_adult_height(150.0, 156.0, 150.0, "M")
    assert r.cm == pytest.approx(171.2329, abs=1e-4)


def test_hand_worked_boy_between_table_points_is_interpolated():
    # Boy, BA 11.5 y: between 10 y (78.4 %) and 12 y (83.4 %) -> 82.15 %; 140 cm -> 170.42 cm.
    r = predict_adult_height(140.0, 138.0, 140.0, "M")
    assert r.percent_of_mature_height == pytest.approx(82.15)
    assert r.cm == pytest.approx(170.4199, abs=1e-4)


def test_hand_worked_girl():
    # Girl, BA 12.5 y, CA 12 y: (92.2 + 95.8) / 2 = 94.0 %; 152 cm -> 161.70 cm.
    r = predict_adult_height(152.0, 150.0, 144.0, "F")
    assert r.cm == pytest.approx(161.7021, abs=1e-4)


@pytest.mark.parametrize(
    ("ba", "ca", "pattern"),
    [(132.0, 120.0, ACCELERATED), (150.0, 120.0, ACCELERATED), (108.0, 120.0, RETARDED), (90.0, 120.0, RETARDED)],
)
def test_accelerated_and_retarded_tables_are_named_but_not_guessed(ba, ca, pattern):
    r = predict_adult_height(140.0, ba, ca, "M")
    assert r.cm is None
    assert r.reason == HeightReason.TABLE_NOT_AVAILABLE
    assert r.maturity == pattern
    assert pattern in r.table


def test_just_under_one_year_difference_uses_the_average_table():
    assert predict_adult_height(140.0, 131.9, 120.0, "M").maturity == AVERAGE
    assert predict_adult_height(140.0, 108.1, 120.0, "M").maturity == AVERAGE


@pytest.mark.parametrize(("sex", "ba"), [("M", 83.0), ("M", 223.0), ("F", 71.0), ("F", 217.0)])
def test_bone_age_outside_the_table_gives_no_prediction(sex, ba):
    r = predict_adult_height(120.0, ba, ba, sex)
    assert r.cm is None and r.reason == HeightReason.BONE_AGE_OUTSIDE_TABLE


@pytest.mark.parametrize(
    ("height", "ba", "ca", "sex", "reason"),
    [
        (None, 120.0, 120.0, "M", HeightReason.HEIGHT_UNKNOWN),
        (float("nan"), 120.0, 120.0, "M", HeightReason.HEIGHT_UNKNOWN),
        (1.4, 120.0, 120.0, "M", HeightReason.HEIGHT_IMPLAUSIBLE),   # metres, not cm
        (140.0, None, 120.0, "M", HeightReason.BONE_AGE_UNKNOWN),
        (140.0, 120.0, 120.0, None, HeightReason.SEX_UNKNOWN),
        (140.0, 120.0, 120.0, "O", HeightReason.SEX_UNKNOWN),
        (140.0, 120.0, None, "F", HeightReason.AGE_UNKNOWN),
    ],
)
def test_missing_inputs_give_null_with_a_reason(height, ba, ca, sex, reason):
    r = predict_adult_height(height, ba, ca, sex)
    assert r.cm is None and r.reason == reason
