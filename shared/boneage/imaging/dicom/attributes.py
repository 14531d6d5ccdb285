"""Reading a DICOM dataset's attributes without trusting them: element access that survives a
malformed value, and the non-PHI facts (plus the dates used only to compute the age) ingest keeps.

pydicom converts raw values lazily, on first access, so a damaged element raises only when it is
read; ``ELEMENT_ERRORS`` is what that conversion raises. A malformed optional value is the
modality's problem: we note it in ``warnings`` (never quoting the value: it may be PHI) and go on.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException
from pydicom.multival import MultiValue

from boneage.imaging.metadata import HEIGHT_RANGE_CM, AgeEvidence, parse_date, parse_patient_age, parse_sex
from boneage.imaging.text import VR_MAX_CHARS
from boneage.imaging.types import StudyMetadata
from boneage.safetext import clean

# pydicom's value conversion (``pydicom.values.convert_value`` via ``hooks.raw_element_value``):
# NotImplementedError for an unknown VR, BytesLengthException or struct.error for a binary value of
# the wrong length, ValueError (UnicodeDecodeError included) for text and numbers it cannot parse,
# LookupError for an unknown character set, TypeError / OverflowError for values of the wrong kind.
ELEMENT_ERRORS: tuple[type[BaseException], ...] = (
    NotImplementedError, BytesLengthException, struct.error, ValueError, LookupError, TypeError, OverflowError,
)
STUDY_DATE_TAGS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
SPACING_TAGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")


def get_value(ds: Dataset, keyword: str, warnings: list[str]) -> Any:
    """An element's value, or None when absent or unreadable (a malformed value is the modality's
    problem; we note it and carry on)."""
    try:
        value = ds.get(keyword)
    except ELEMENT_ERRORS:
        warnings.append(f"{keyword} is unreadable")
        return None
    return value


def header_text(ds: Dataset, keyword: str, warnings: list[str]) -> str | None:
    """A header string we may keep and re-emit: cleaned of control and format characters; ``None`` when
    absent, empty, unreadable or longer than its VR allows (warnings name the attribute, never the value)."""
    value = get_value(ds, keyword, warnings)
    if value is None:
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        joined = "\\".join(str(v) for v in value)        # DICOM's own value separator
    elif isinstance(value, bytes):
        joined = value.decode("latin-1")
    else:
        joined = str(value)
    joined = joined.strip()
    limit = VR_MAX_CHARS.get(_vr(ds, keyword) or "", VR_MAX_CHARS["UT"])
    if any(len(part) > limit for part in joined.split("\\")):     # the limit is per value
        warnings.append(f"{keyword} is longer than its DICOM limit of {limit} characters; ignored")
        return None
    return clean(joined) or None


def _vr(ds: Dataset, keyword: str) -> str | None:
    try:
        return str(ds[keyword].VR)
    except (KeyError, *ELEMENT_ERRORS):
        try:
            return str(dictionary_VR(keyword))
        except KeyError:
            return None


def text(value: Any) -> str | None:
    if value is None:
        return None
    stripped = str(value).strip()
    return stripped or None


def safe_int(ds: Dataset, keyword: str) -> int | None:
    """An integer element, or None when absent or not an integer."""
    try:
        value = ds.get(keyword)
        return None if value is None else int(value)
    except ELEMENT_ERRORS:
        return None


def extract_metadata(ds: Dataset, warnings: list[str]) -> tuple[StudyMetadata, AgeEvidence]:
    """The non-PHI facts the service needs, plus the dates used only to compute the age."""
    ts = ds.file_meta.get("TransferSyntaxUID")
    meta = StudyMetadata(source_format="dicom", warnings=warnings)
    meta.rows = safe_int(ds, "Rows")
    meta.columns = safe_int(ds, "Columns")
    meta.transfer_syntax = str(ts) if ts else None
    meta.transfer_syntax_name = ts.name if ts else None
    meta.photometric = header_text(ds, "PhotometricInterpretation", warnings)
    meta.bits_stored = safe_int(ds, "BitsStored")
    meta.modality = header_text(ds, "Modality", warnings)
    meta.body_part = header_text(ds, "BodyPartExamined", warnings)
    for keyword in ("ImageLaterality", "Laterality"):
        value = (header_text(ds, keyword, warnings) or "").upper()
        if value in ("L", "R"):
            meta.laterality, meta.laterality_source = value, keyword
            break
    sex = header_text(ds, "PatientSex", warnings)
    if sex is not None:
        try:
            meta.sex = parse_sex(sex)
        except ValueError:
            warnings.append("PatientSex is not M, F or O; sex unknown")
        if meta.sex is not None:
            meta.sex_source = "PatientSex"
    for keyword in SPACING_TAGS:
        value = get_value(ds, keyword, warnings)
        try:
            spacing = (float(value[0]), float(value[1])) if value is not None and len(value) == 2 else None
        except (TypeError, ValueError, IndexError):     # not a pair of numbers
            spacing = None
        if spacing and all(math.isfinite(s) and s > 0 for s in spacing):
            meta.pixel_spacing_mm, meta.pixel_spacing_source = spacing, keyword
            break
    size = get_value(ds, "PatientSize", warnings)
    try:
        height_cm = float(size) * 100.0 if size not in (None, "") else None
    except (TypeError, ValueError):                     # a multi-value or a non-number
        height_cm = None
    if height_cm is not None:
        if HEIGHT_RANGE_CM[0] <= height_cm <= HEIGHT_RANGE_CM[1]:
            meta.patient_height_cm = round(height_cm, 1)
        else:
            warnings.append("PatientSize is outside 0.3-2.5 m; ignored")
    for attr, keyword in (("study_instance_uid", "StudyInstanceUID"), ("series_instance_uid", "SeriesInstanceUID"),
                          ("sop_instance_uid", "SOPInstanceUID"), ("sop_class_uid", "SOPClassUID"),
                          ("accession_number", "AccessionNumber")):
        setattr(meta, attr, header_text(ds, keyword, warnings))
    return meta, _age_evidence(ds, warnings)


def _age_evidence(ds: Dataset, warnings: list[str]) -> AgeEvidence:
    ev = AgeEvidence()
    birth = text(get_value(ds, "PatientBirthDate", warnings))
    if birth:
        try:
            ev.birth, ev.birth_source = parse_date(birth), "PatientBirthDate"
        except ValueError:
            ev.problems.append("PatientBirthDate is not a valid date")
    for keyword in STUDY_DATE_TAGS:
        value = text(get_value(ds, keyword, warnings))
        if not value:
            continue
        try:
            ev.study, ev.study_source = parse_date(value), keyword
            break
        except ValueError:
            ev.problems.append(f"{keyword} is not a valid date")
    age = text(get_value(ds, "PatientAge", warnings))
    if age:
        try:
            ev.patient_age_months = parse_patient_age(age)
        except ValueError:
            ev.problems.append("PatientAge is not in nnnD/W/M/Y form")
    return ev
