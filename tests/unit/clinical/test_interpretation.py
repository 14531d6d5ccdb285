"""Bone age SDS and flag against the Greulich & Pyle / Brush Foundation transcription we cite."""

from __future__ import annotations

import pytest

from boneage.clinical import (
    ADVANCED,
    DELAYED,
    WITHIN_NORMAL_LIMITS,
    SdsReason,
    interpret,
)
from boneage.clinical.tables import GP_BOYS, GP_GIRLS

# Points copied by hand from shared/reference/domain.md (the transcription the code cites), so a
# silent edit of the table fails here: (sex, CA months, mean BA months, SD months).
PINNED_POINTS = [
    ("M", 3, 3.01, 0.69),
    ("M", 12, 12.74, 1.97),
    ("M", 120, 125.68, 9.79),
    ("M", 204, 206.21, 13.05),
    ("F", 3, 3.02, 0.72),
    ("F", 12, 12.04, 1.77),
    ("F", 144, 149.62, 10.24),
    ("F", 192, 189.44, 7.31),
]


@pytest.mark.parametrize(("sex", "ca", "mean", "sd"), PINNED_POINTS)
def test_table_points_give_zero_sds_at_the_mean_and_one_sd_above(sex, ca, mean, sd):
    at_mean = interpret(mean, None, sex, ca)
    assert at_mean.sds == pytest.approx(0.0, abs=1e-12)
    assert at_mean.reference_mean_months == pytest.approx(mean)
    assert at_mean.reference_sd_months == pytest.approx(sd)
    assert interpret(mean + sd, None, sex, ca).sds == pytest.approx(1.0)


def test_tables_span_the_documented_age_ranges():
    assert (GP_BOYS.min_age_months, GP_BOYS.max_age_months) == (3, 204)
    assert (GP_GIRLS.min_age_months, GP_GIRLS.max_age_months) == (3, 192)
    assert len(GP_BOYS.age_months) == 24 and len(GP_GIRLS.age_months) == 23


def test_mean_and_sd_are_interpolated_linearly_between_table_ages():
    # Girl aged 5.5 y: halfway between 5 y (66.21, 11.65) and 6 y (78.50, 10.23).
    # mean 72.355, SD 10.94; BA 48 -> (48 - 72.355) / 10.94 = -2.22623...
    r = interpret(48.0, None, "F", 66.0)
    assert r.reference_mean_months == pytest.approx(72.355)
    assert r.reference_sd_months == pytest.approx(10.94)
    assert r.sds == pytest.approx(-2.226234, abs=1e-6)
    assert r.flag == DELAYED
    assert r.ba_minus_ca == pytest.approx(-18.0)


def test_flags_use_strict_two_sd_limits():
    # Boy 10 y: mean 125.68, SD 9.79. Exactly +2 SD stays within normal limits; beyond it is advanced.
    assert interpret(125.68 + 2 * 9.79, None, "M", 120).flag == WITHIN_NORMAL_LIMITS
    assert interpret(146.0, None, "M", 120).flag == ADVANCED
    assert interpret(146.0, None, "M", 120).sds == pytest.approx((146.0 - 125.68) / 9.79)
    assert interpret(125.68 - 2 * 9.79 - 0.01, None, "M", 120).flag == DELAYED
    assert interpret(120.0, None, "M", 120).flag == WITHIN_NORMAL_LIMITS


def test_ninety_percent_interval_maps_to_an_sds_interval():
    r = interpret(125.68, (135.47, 115.89), "M", 120)   # order of the bounds does not matter
    assert r.sds_interval == pytest.approx((-1.0, 1.0))
    assert r.as_dict()["sds_interval"] == pytest.approx([-1.0, 1.0])


@pytest.mark.parametrize("sex", [None, "", "O", "X", "unknown"])
def test_unknown_sex_gives_no_sds_and_says_so(sex):
    r = interpret(100.0, (90.0, 110.0), sex, 96.0)
    assert r.sds is None and r.sds_interval is None and r.flag is None
    assert r.sds_reason == SdsReason.SEX_UNKNOWN and r.flag_reason == SdsReason.SEX_UNKNOWN
    assert r.ba_minus_ca == pytest.approx(4.0)   # still useful without a reference


def test_sex_codes_are_case_and_space_insensitive():
    assert interpret(100.0, None, " m ", 96.0).sds == interpret(100.0, None, "M", 96.0).sds
    assert interpret(100.0, None, "f", 96.0).table.startswith("Greulich-Pyle/Brush Foundation girls")


@pytest.mark.parametrize(
    ("sex", "ca", "reason"),
    [
        ("M", 2.9, SdsReason.AGE_BELOW_REFERENCE),
        ("F", 0.0, SdsReason.AGE_BELOW_REFERENCE),
        ("M", 204.1, SdsReason.AGE_ABOVE_REFERENCE),
        ("F", 192.5, SdsReason.AGE_ABOVE_REFERENCE),
        ("F", None, SdsReason.AGE_UNKNOWN),
        ("F", float("nan"), SdsReason.AGE_UNKNOWN),
    ],
)
def test_outside_the_table_the_sds_is_null_with_a_reason(sex, ca, reason):
    r = interpret(150.0, (140.0, 160.0), sex, ca)
    assert r.sds is None and r.flag is None
    assert r.sds_reason == reason
    assert r.table is not None   # the table that was consulted is still named


def test_table_edges_are_inside_the_range():
    assert interpret(206.21, None, "M", 204).sds == pytest.approx(0.0, abs=1e-12)
    assert interpret(3.02, None, "F", 3).sds == pytest.approx(0.0, abs=1e-12)


def test_missing_bone_age_gives_no_sds():
    r = interpret(None, None, "M", 100)
    assert r.sds is None and r.sds_reason == SdsReason.BONE_AGE_UNKNOWN and r.ba_minus_ca is None


def test_table_is_named_with_its_source():
    r = interpret(100.0, None, "M", 96)
    assert "Greulich" in r.table and "Tables V/VI" in r.table


@pytest.mark.parametrize("sex, end", [("M", "19 y (228 months) for boys"), ("F", "18 y (216 months) for girls"),
                                      (None, "19 y (228 months) for boys, 18 y (216 months) for girls")])
def test_near_maturity_is_worded_with_where_the_standards_end_and_the_cap(sex, end):
    from boneage.clinical.text import near_maturity_text

    assert near_maturity_text(sex) == (
        "near skeletal maturity: growth plates closing; the bone age is capped at the end of the "
        f"Greulich & Pyle standards, {end}, so a hand at the cap may be older still")


def test_interpretation_of_a_near_mature_hand_names_the_flag_after_the_sds_flag_or_its_absence():
    from boneage.clinical.text import flag_text

    assert flag_text("within_normal_limits", None, near_maturity=True) == \
        "within normal limits (-2 to +2 SD); near skeletal maturity"
    assert flag_text(None, "age_above_reference", near_maturity=True) == \
        "none - chronological age above the reference table's last age; near skeletal maturity"
    assert flag_text("advanced", None) == "advanced (above +2 SD)"
