"""Bone age SDS and the delayed / advanced / within-normal-limits flag (pure, no I/O).

SDS = (BA - mean BA for CA and sex) / SD for CA and sex, with mean and SD linearly interpolated in
the Greulich & Pyle / Brush Foundation table (``tables.GP_TABLES``). Outside the table's age range
the SDS is null with a reason: the reference says nothing there, and extrapolating it would invent
a norm. Unknown sex gives no SDS, because the reference is sex-specific and a default would bias.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from boneage.clinical.tables import GP_TABLES, ReferenceTable

DELAYED = "delayed"
ADVANCED = "advanced"
WITHIN_NORMAL_LIMITS = "within_normal_limits"

# Cut-off in SD units, the usual clinical convention (|SDS| > 2 is outside ~95 % of the reference).
FLAG_SDS_LIMIT = 2.0


class SdsReason:
    """Stable codes for why an SDS (and therefore the flag) is null."""

    SEX_UNKNOWN = "sex_unknown"
    AGE_UNKNOWN = "age_unknown"
    AGE_BELOW_REFERENCE = "age_below_reference"
    AGE_ABOVE_REFERENCE = "age_above_reference"
    BONE_AGE_UNKNOWN = "bone_age_unknown"


REASON_MESSAGES: dict[str, str] = {
    SdsReason.SEX_UNKNOWN: "sex unknown: the Greulich & Pyle reference is sex-specific, so no SDS is given",
    SdsReason.AGE_UNKNOWN: "chronological age unknown (no birth date, study date, PatientAge or age metadata)",
    SdsReason.AGE_BELOW_REFERENCE: "chronological age below the reference table's first age",
    SdsReason.AGE_ABOVE_REFERENCE: "chronological age above the reference table's last age",
    SdsReason.BONE_AGE_UNKNOWN: "no bone age was estimated",
}


@dataclass(frozen=True)
class Interpretation:
    bone_age_months: float | None
    chronological_age_months: float | None
    ba_minus_ca: float | None                   # months
    sds: float | None
    sds_interval: tuple[float, float] | None    # the 90 % bone age interval mapped through the same mean/SD
    sds_reason: str | None                      # an SdsReason code when sds is None
    flag: str | None                            # DELAYED | ADVANCED | WITHIN_NORMAL_LIMITS | None
    flag_reason: str | None                     # why flag is None (same codes as sds_reason)
    table: str | None                           # the reference table used, with its source
    reference_mean_months: float | None = None
    reference_sd_months: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["sds_interval"] is not None:
            d["sds_interval"] = list(d["sds_interval"])
        return d


def normalise_sex(sex: str | None) -> str | None:
    """"M"/"F" (any case, surrounding space) or None; "O", empty and anything else are unknown."""
    if sex is None:
        return None
    s = sex.strip().upper()
    return s if s in ("M", "F") else None


def reference_table(sex: str | None) -> ReferenceTable | None:
    s = normalise_sex(sex)
    return GP_TABLES[s] if s else None


def flag_for_sds(sds: float) -> str:
    if sds < -FLAG_SDS_LIMIT:
        return DELAYED
    if sds > FLAG_SDS_LIMIT:
        return ADVANCED
    return WITHIN_NORMAL_LIMITS


def is_finite(x: float | None) -> bool:
    """A number we can compute with: not None, not NaN, not infinite."""
    return x is not None and math.isfinite(x)


def interpret(
    bone_age_months: float | None,
    interval: tuple[float, float] | None,
    sex: str | None,
    chronological_age_months: float | None,
) -> Interpretation:
    """BA - CA, bone age SDS with its interval, and the flag; nulls always come with a reason."""
    ba = float(bone_age_months) if is_finite(bone_age_months) else None
    ca = float(chronological_age_months) if is_finite(chronological_age_months) else None
    ba_minus_ca = ba - ca if ba is not None and ca is not None else None

    def null(reason: str, table: ReferenceTable | None = None) -> Interpretation:
        return Interpretation(
            bone_age_months=ba, chronological_age_months=ca, ba_minus_ca=ba_minus_ca,
            sds=None, sds_interval=None, sds_reason=reason, flag=None, flag_reason=reason,
            table=f"{table.name} ({table.source})" if table else None,
        )

    if ba is None:
        return null(SdsReason.BONE_AGE_UNKNOWN)
    table = reference_table(sex)
    if table is None:
        return null(SdsReason.SEX_UNKNOWN)
    if ca is None:
        return null(SdsReason.AGE_UNKNOWN, table)
    if ca < table.min_age_months:
        return null(SdsReason.AGE_BELOW_REFERENCE, table)
    if ca > table.max_age_months:
        return null(SdsReason.AGE_ABOVE_REFERENCE, table)

    mean, sd = table.at(ca)
    sds = (ba - mean) / sd
    sds_interval = None
    if interval is not None and all(is_finite(v) for v in interval):
        lo, hi = sorted(float(v) for v in interval)
        sds_interval = ((lo - mean) / sd, (hi - mean) / sd)
    return Interpretation(
        bone_age_months=ba, chronological_age_months=ca, ba_minus_ca=ba_minus_ca,
        sds=sds, sds_interval=sds_interval, sds_reason=None,
        flag=flag_for_sds(sds), flag_reason=None,
        table=f"{table.name} ({table.source})",
        reference_mean_months=mean, reference_sd_months=sd,
    )
