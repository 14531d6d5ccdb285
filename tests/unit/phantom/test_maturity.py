"""Maturity tables: GP SDs as transcribed in the domain brief, stage order of every epiphysis family."""

from __future__ import annotations

import pytest

from boneage.phantom import maturity as mat


@pytest.mark.parametrize("age,male,sd", [(12, True, 1.97), (12, False, 1.77), (144, False, 10.24), (204, True, 13.05),
                                         (60, True, 8.79), (192, False, 7.31)])
def test_gp_sd_matches_the_brush_foundation_table(age, male, sd):
    assert mat.gp_sd_months(age, male) == pytest.approx(sd)


def test_gp_sd_interpolates_between_rows_and_holds_beyond_the_table():
    assert mat.gp_sd_months(15, True) == pytest.approx((1.97 + 3.52) / 2)
    assert mat.gp_sd_months(300, False) == pytest.approx(7.31)


@pytest.mark.parametrize("family", sorted(mat.EPIPHYSES))
def test_each_epiphysis_appears_widens_caps_then_fuses_and_girls_lead(family):
    for timing in mat.EPIPHYSES[family]:
        states = [mat.epiphysis_state(float(age), timing) for age in range(0, 241, 3)]
        present = [s for s in states if s.present]
        assert not states[0].present and present
        widths = [s.width for s in present]
        capping = [s.capping for s in present]
        gaps = [s.gap for s in present]
        assert widths == sorted(widths) and capping == sorted(capping) and gaps == sorted(gaps, reverse=True)
        assert widths[-1] >= 1.0 and capping[-1] == 1.0 and gaps[-1] == 0.0
    girls, boys = mat.EPIPHYSES[family]
    assert girls.onset <= boys.onset and girls.fusion < boys.fusion


def test_carpals_appear_earlier_in_girls_in_the_documented_order():
    order = sorted(mat.CARPAL_ONSET, key=lambda name: mat.CARPAL_ONSET[name][0])
    assert order[:2] == ["capitate", "hamate"] and order[-1] == "pisiform"
    for name, (girls, boys) in mat.CARPAL_ONSET.items():
        assert girls <= boys, name
        assert mat.carpal_size(girls - 0.5, name, False) == 0.0 < mat.carpal_size(girls + 0.5, name, False)
