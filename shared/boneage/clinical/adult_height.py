"""Adult height prediction by the Bayley-Pinneau method (pure, no I/O).

Predicted adult height = current height / (percent of mature height at this bone age / 100). The
table is chosen by BA - CA: accelerated (>= +1 y), retarded (<= -1 y), otherwise average (Bayley &
Pinneau 1952). Only the average table is transcribed from a source we could verify (see
``tables.py``); the other two return null with ``table_not_available`` instead of a guess, and the
table used is always named in the result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from boneage.clinical.interpretation import is_finite, normalise_sex
from boneage.clinical.tables import BP_ACCELERATED_MONTHS, BP_AVERAGE, BP_RETARDED_MONTHS

# Outside this range a height is a unit or entry error (cm); the same range ingest accepts.
MIN_HEIGHT_CM = 30.0
MAX_HEIGHT_CM = 250.0


class HeightReason:
    """Stable codes for why no adult height is predicted."""

    HEIGHT_UNKNOWN = "height_unknown"
    HEIGHT_IMPLAUSIBLE = "height_implausible"
    SEX_UNKNOWN = "sex_unknown"
    AGE_UNKNOWN = "age_unknown"
    BONE_AGE_UNKNOWN = "bone_age_unknown"
    BONE_AGE_OUTSIDE_TABLE = "bone_age_outside_table"
    TABLE_NOT_AVAILABLE = "table_not_available"


HEIGHT_REASON_MESSAGES: dict[str, str] = {
    HeightReason.HEIGHT_UNKNOWN: "no current height (DICOM PatientSize or height-cm metadata)",
    HeightReason.HEIGHT_IMPLAUSIBLE: f"current height outside {MIN_HEIGHT_CM:g}-{MAX_HEIGHT_CM:g} cm",
    HeightReason.SEX_UNKNOWN: "sex unknown: Bayley-Pinneau tables are sex-specific",
    HeightReason.AGE_UNKNOWN: "chronological age unknown, so the table (by BA - CA) cannot be chosen",
    HeightReason.BONE_AGE_UNKNOWN: "no bone age was estimated",
    HeightReason.BONE_AGE_OUTSIDE_TABLE: "bone age outside the Bayley-Pinneau table's range",
    HeightReason.TABLE_NOT_AVAILABLE: (
        "BA - CA calls for the accelerated or retarded Bayley-Pinneau table, which is not "
        "transcribed from a verified source in this version"
    ),
}

ACCELERATED = "accelerated"
AVERAGE = "average"
RETARDED = "retarded"


@dataclass(frozen=True)
class AdultHeight:
    cm: float | None
    table: str | None               # the table used, or the one that would have been needed
    reason: str | None              # a HeightReason code when cm is None
    maturity: str | None = None     # ACCELERATED | AVERAGE | RETARDED
    percent_of_mature_height: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def maturity_pattern(bone_age_months: float, chronological_age_months: float) -> str:
    delta = bone_age_months - chronological_age_months
    if delta >= BP_ACCELERATED_MONTHS:
        return ACCELERATED
    if delta <= BP_RETARDED_MONTHS:
        return RETARDED
    return AVERAGE



def predict_adult_height(
    height_cm: float | None,
    bone_age_months: float | None,
    chronological_age_months: float | None,
    sex: str | None,
) -> AdultHeight:
    if not is_finite(height_cm):
        return AdultHeight(None, None, HeightReason.HEIGHT_UNKNOWN)
    assert height_cm is not None
    if not MIN_HEIGHT_CM <= height_cm <= MAX_HEIGHT_CM:
        return AdultHeight(None, None, HeightReason.HEIGHT_IMPLAUSIBLE)
    if not is_finite(bone_age_months):
        return AdultHeight(None, None, HeightReason.BONE_AGE_UNKNOWN)
    assert bone_age_months is not None
    s = normalise_sex(sex)
    if s is None:
        return AdultHeight(None, None, HeightReason.SEX_UNKNOWN)
    if not is_finite(chronological_age_months):
        return AdultHeight(None, None, HeightReason.AGE_UNKNOWN)
    assert chronological_age_months is not None

    pattern = maturity_pattern(bone_age_months, chronological_age_months)
    if pattern != AVERAGE:
        sex_word = "boys" if s == "M" else "girls"
        return AdultHeight(None, f"Bayley-Pinneau {pattern}, {sex_word}", HeightReason.TABLE_NOT_AVAILABLE,
                           maturity=pattern)
    table = BP_AVERAGE[s]
    lo, hi = float(table.bone_age_months[0]), float(table.bone_age_months[-1])
    if not lo <= bone_age_months <= hi:
        return AdultHeight(None, table.name, HeightReason.BONE_AGE_OUTSIDE_TABLE, maturity=pattern)
    pct = table.percent_at(bone_age_months)
    return AdultHeight(
        cm=height_cm / (pct / 100.0), table=f"{table.name} ({table.source})", reason=None,
        maturity=pattern, percent_of_mature_height=pct,
    )
