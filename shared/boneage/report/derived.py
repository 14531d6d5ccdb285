"""What both DICOM results (the SC and the SR) share: the prepared source, series texts, encoding.

Both go into a NEW series of the SOURCE study and copy its patient module (see ``dicom``); the
source must therefore carry valid UIDs for what they reference, and the Type 2 attributes highdicom
copies must be present (empty is valid DICOM, absent is not). Every value the builders may copy
is made to conform to its VR first, or left out (``conform``).
"""

from __future__ import annotations

import io

from pydicom.dataset import Dataset
from pydicom.uid import UID

from boneage.report.conform import conforming_copy
from boneage.result import MANUFACTURER, AssessmentResult

# Type 2 attributes highdicom copies from the source: present-but-empty is valid DICOM, absent is
# not, and real modalities do leave some out.
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
                 "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
_TYPE1_NEEDED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# What an archive reconciles a study's objects on, besides the UIDs.
_IDENTITY = ("PatientID", "PatientName")


class UnusableSource(ValueError):
    """The source dataset lacks a valid UID that results must reference, or has a patient identity
    that is not valid DICOM; no DICOM results are made."""


def _has_value(ds: Dataset, keyword: str) -> bool:
    try:
        return str(ds.get(keyword, "") or "").strip() != ""
    except Exception:  # noqa: BLE001 - a value pydicom cannot even read counts as present
        return keyword in ds


def prepare_source(source: Dataset) -> Dataset:
    """What the builders copy from: ``source``'s conforming values (``conform.conforming_copy``),
    with missing or left-out Type 2 attributes present and empty.

    UnusableSource where a UID the results reference is missing or invalid: they join the
    source's study or none (a study of our own making would split the patient's record); and where
    the source's patient ID or name is present but not valid DICOM (results under an empty identity
    would not reconcile with the study). The message names the attributes, never their values.
    """
    ds = conforming_copy(source)
    unusable = [k for k in _TYPE1_NEEDED if not str(ds.get(k, "") or "") or not UID(str(ds.get(k))).is_valid]
    if unusable:
        raise UnusableSource(f"source dataset lacks a valid {', '.join(unusable)}")
    # An identity the source has but that could not be copied: results under an empty one would not
    # reconcile with the rest of the patient's study.
    lost = [k for k in _IDENTITY if _has_value(source, k) and not _has_value(ds, k)]
    if lost:
        raise UnusableSource(f"source dataset's {', '.join(lost)} is not valid DICOM")
    for keyword in _TYPE2_COPIED:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def describe_series(result: AssessmentResult, what: str) -> str:
    """The Series Description of a result object (LO: at most 64 characters)."""
    text = f"Bone age {what}" + (" - NOT FOR CLINICAL USE" if result.demo_model else "")
    return text[:64]


def software_version(result: AssessmentResult) -> str:
    """The model version as Software Versions (LO: at most 64 characters)."""
    return (result.model_version or "unknown")[:64]


def encode(ds: Dataset) -> bytes:
    """``ds`` as a DICOM Part 10 file."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
