"""Patient and study facts the assessment needs, from DICOM headers or upload metadata.

Upload metadata are S3 user metadata (``x-amz-meta-`` stripped) or CLI flags, with these keys:
``sex`` (M/F/O/empty), ``age-months``, ``birth-date`` and ``study-date`` (YYYYMMDD or YYYY-MM-DD),
``study-ref``, ``height-cm``, ``laterality`` (L/R). They override DICOM values. A bad upload value
is the sender's to fix, so it is a ``Rejection(invalid_metadata)``; a bad DICOM header value is
the modality's, so it becomes ``None`` plus a reason, and the image is still assessed. Messages
name the key and the form expected, never the value: a rejection is stored and notified, and a
mistyped birth date is still a birth date.

Sex is never defaulted: anything but M or F is unknown (``None``). Chronological age is
(study date - birth date) in days / (365.25 / 12), so every month has the same length and a leap
day birth needs no special case; DICOM's PatientAge (nnnD/W/M/Y) is the fallback.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from boneage.errors import Reason, Rejection
from boneage.imaging.text import MAX_METADATA_VALUE_CHARS

DAYS_PER_MONTH = 365.25 / 12
MAX_AGE_MONTHS = 130 * 12          # older than anyone alive: a date typo, not a patient
HEIGHT_RANGE_CM = (30.0, 250.0)

_SEX_WORDS = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F",
              "O": None, "OTHER": None, "U": None, "UNKNOWN": None, "": None}
_LATERALITY_WORDS = {"L": "L", "LEFT": "L", "R": "R", "RIGHT": "R"}
_DATE_RE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_AGE_RE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_AGE_UNIT_MONTHS = {"D": 1 / DAYS_PER_MONTH, "W": 7 / DAYS_PER_MONTH, "M": 1.0, "Y": 12.0}
KNOWN_KEYS = ("sex", "age-months", "birth-date", "study-date", "study-ref", "height-cm", "laterality")


def parse_date(value: str) -> date:
    """YYYYMMDD (DICOM DA) or YYYY-MM-DD; ``ValueError`` for anything else, 20170229 included."""
    m = _DATE_RE.match(value.strip())
    try:
        if not m:
            raise ValueError
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError("not a valid date in YYYYMMDD or YYYY-MM-DD form") from None


def months_between(birth: date, study: date) -> float:
    """Chronological age in months; ``ValueError`` when the study predates the birth."""
    days = (study - birth).days
    if days < 0:
        raise ValueError("study date is before birth date")
    return days / DAYS_PER_MONTH


def parse_patient_age(value: str) -> float:
    """DICOM Age String nnnD/W/M/Y (PS3.5 6.2, VR AS) -> months. ``ValueError`` if malformed."""
    m = _AGE_RE.match(value)
    if not m:
        raise ValueError("PatientAge is not in nnnD/W/M/Y form")
    return int(m[1]) * _AGE_UNIT_MONTHS[m[2].upper()]


def parse_sex(value: str) -> str | None:
    """M/F (or male/female) -> "M"/"F"; O, U, empty -> None; ``ValueError`` for anything else."""
    key = value.strip().upper()
    if key not in _SEX_WORDS:
        raise ValueError("must be M, F, O or empty")
    return _SEX_WORDS[key]


def parse_laterality(value: str) -> str | None:
    key = value.strip().upper()
    if key == "":
        return None
    if key not in _LATERALITY_WORDS:
        raise ValueError("must be L or R")
    return _LATERALITY_WORDS[key]


@dataclass
class UploadMetadata:
    """Validated upload metadata; ``given`` lists the keys the sender set (even to empty)."""

    sex: str | None = None
    age_months: float | None = None
    birth_date: date | None = None
    study_date: date | None = None
    study_ref: str | None = None
    height_cm: float | None = None
    laterality: str | None = None
    given: set[str] = field(default_factory=set)


def normalise_key(key: str) -> str:
    key = key.strip().lower().replace("_", "-")
    return key[len("x-amz-meta-"):] if key.startswith("x-amz-meta-") else key


def _bad(key: str, why: str) -> Rejection:
    return Rejection(Reason.INVALID_METADATA, f"upload metadata '{key}': {why}")


def _float(key: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _bad(key, f"must be a number from {lo:g} to {hi:g}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise _bad(key, f"must be a number from {lo:g} to {hi:g}")
    return value


def parse_upload_metadata(metadata: Mapping[str, str] | None) -> UploadMetadata:
    """Validate the known keys; unknown keys are ignored (S3 objects carry other metadata too)."""
    out = UploadMetadata()
    if not metadata:
        return out
    values: dict[str, str] = {}
    for raw_key, raw_value in metadata.items():
        key = normalise_key(str(raw_key))
        if key in KNOWN_KEYS:
            values[key] = "" if raw_value is None else str(raw_value).strip()
    for key, raw in values.items():
        if len(raw) > MAX_METADATA_VALUE_CHARS:
            raise _bad(key, f"must be at most {MAX_METADATA_VALUE_CHARS} characters")
        if key != "sex" and raw == "":
            continue            # an empty optional value means "not given"
        out.given.add(key)
        try:
            if key == "sex":
                out.sex = parse_sex(raw)
            elif key == "laterality":
                out.laterality = parse_laterality(raw)
            elif key == "birth-date":
                out.birth_date = parse_date(raw)
            elif key == "study-date":
                out.study_date = parse_date(raw)
        except ValueError as exc:
            raise _bad(key, str(exc)) from None
        if key == "age-months":
            out.age_months = _float(key, raw, 0.0, MAX_AGE_MONTHS)
        elif key == "height-cm":
            out.height_cm = _float(key, raw, *HEIGHT_RANGE_CM)
        elif key == "study-ref":
            if len(raw) > 64 or not raw.isprintable() or not raw.isascii():
                raise _bad(key, "must be at most 64 printable ASCII characters")
            out.study_ref = raw
    if out.birth_date and out.study_date and out.study_date < out.birth_date:
        raise _bad("study-date", "study date is before birth date")
    return out


@dataclass
class AgeEvidence:
    """Dates and ages found in a file, each with the name of the field it came from."""

    birth: date | None = None
    birth_source: str | None = None
    study: date | None = None
    study_source: str | None = None
    patient_age_months: float | None = None
    problems: list[str] = field(default_factory=list)   # why a field could not be used


@dataclass
class AgeResult:
    months: float | None
    source: str | None
    reason: str | None


def resolve_age(evidence: AgeEvidence, upload: UploadMetadata) -> AgeResult:
    """Pick the chronological age: explicit ``age-months``, then birth+study dates (upload values
    overriding the file's), then PatientAge. When none works, say why in ``reason``."""
    if upload.age_months is not None:
        return AgeResult(upload.age_months, "metadata:age-months", None)
    birth, birth_src = evidence.birth, evidence.birth_source
    study, study_src = evidence.study, evidence.study_source
    if upload.birth_date is not None:
        birth, birth_src = upload.birth_date, "metadata:birth-date"
    if upload.study_date is not None:
        study, study_src = upload.study_date, "metadata:study-date"
    problems = list(evidence.problems)
    if birth is not None and study is not None:
        try:
            months = months_between(birth, study)
        except ValueError as exc:
            if upload.birth_date is not None or upload.study_date is not None:
                raise _bad("birth-date", str(exc)) from None
            problems.append(f"{study_src} is before {birth_src}")
        else:
            if months <= MAX_AGE_MONTHS:
                return AgeResult(months, f"{birth_src}+{study_src}", None)
            problems.append(f"{birth_src} gives an implausible age")
    else:
        if birth is None:
            problems.append("no birth date")
        if study is None:
            problems.append("no study date")
    if evidence.patient_age_months is not None:
        return AgeResult(evidence.patient_age_months, "PatientAge", None)
    return AgeResult(None, None, "; ".join(problems) or "no age information")
