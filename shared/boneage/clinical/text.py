"""How clinical values read to a person: shared by the PNG report, the DICOM SR and the notification.

One wording everywhere, so the report image, the e-mail and the SR never disagree.
"""

from __future__ import annotations

from boneage.clinical.adult_height import HEIGHT_REASON_MESSAGES
from boneage.clinical.interpretation import REASON_MESSAGES

FLAG_TEXT = {
    "delayed": "delayed (below -2 SD)",
    "advanced": "advanced (above +2 SD)",
    "within_normal_limits": "within normal limits (-2 to +2 SD)",
}

DEMO_DISCLAIMER = "NOT FOR CLINICAL USE - demonstration model"

# Where the Greulich & Pyle standards end, by sex, in the words of the reports.
_STANDARDS_END = {"M": "19 y (228 months) for boys", "F": "18 y (216 months) for girls"}
NEAR_MATURITY_FLAG = "near skeletal maturity"
# When the wrist stage reads fused growth plates on a hand whose bone age lies before any plate fuses.
MATURITY_DISAGREEMENT_TEXT = ("maturity not judged: the wrist stage read the growth plates as fused, but the "
                              "bone age lies before any hand growth plate starts to fuse; check the plates on "
                              "the image")


def near_maturity_text(sex: str | None) -> str:
    """The warning of a near-mature hand: what the bone age means there and where it is capped."""
    end = _STANDARDS_END.get(sex or "", "19 y (228 months) for boys, 18 y (216 months) for girls")
    return (f"{NEAR_MATURITY_FLAG}: growth plates closing; the bone age is capped at the end of the "
            f"Greulich & Pyle standards, {end}, so a hand at the cap may be older still")


def years_months(months: float | None) -> str:
    """126.4 -> '10 y 6 m (126.4 months)'; None -> 'unknown'."""
    if months is None:
        return "unknown"
    whole = int(round(months))
    sign = "-" if whole < 0 else ""
    y, m = divmod(abs(whole), 12)
    return f"{sign}{y} y {m} m ({months:.1f} months)"


def signed(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}{unit}"


def sex_text(sex: str | None, source: str | None, predicted: str | None = None) -> str:
    if sex == "M":
        word = "male"
    elif sex == "F":
        word = "female"
    else:
        guess = f"; the model guessed {predicted}, not used for SDS" if predicted in ("M", "F") else ""
        return f"unknown (no SDS: the reference is sex-specific{guess})"
    return f"{word} (from {source})" if source else word


def sds_text(sds: float | None, interval: list[float] | tuple[float, float] | None, reason: str | None) -> str:
    if sds is None:
        return f"not given - {REASON_MESSAGES.get(reason or '', reason or 'unknown reason')}"
    text = signed(sds)
    if interval:
        text += f" (90 % interval {signed(interval[0])} to {signed(interval[1])})"
    return text


def flag_text(flag: str | None, reason: str | None, near_maturity: bool = False) -> str:
    suffix = f"; {NEAR_MATURITY_FLAG}" if near_maturity else ""
    if flag is None:
        return f"none - {REASON_MESSAGES.get(reason or '', reason or 'no SDS')}{suffix}"
    return FLAG_TEXT.get(flag, flag) + suffix


def adult_height_text(cm: float | None, table: str | None, reason: str | None) -> str:
    if cm is not None:
        short = (table or "").split(" (")[0]
        return f"{cm:.1f} cm ({short})" if short else f"{cm:.1f} cm"
    return f"not given - {HEIGHT_REASON_MESSAGES.get(reason or '', reason or 'unknown reason')}"


def interval_text(interval: list[float] | tuple[float, float] | None) -> str:
    if not interval:
        return "n/a"
    return f"{interval[0]:.1f} - {interval[1]:.1f} months"
