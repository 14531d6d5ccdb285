"""What both DICOM results (the SC and the SR) share: the prepared source, series texts, encoding.

Both go into a NEW series of the SOURCE study and copy its patient module (see ``dicom``); the
source must therefore carry the UIDs they reference, and the Type 2 attributes highdicom copies
must be present (empty is valid DICOM, absent is not).
"""

from __future__ import annotations

import io

from pydicom.dataset import Dataset

from boneage.result import MANUFACTURER, AssessmentResult

# Type 2 attributes highdicom copies from the source: present-but-empty is valid DICOM, absent is
# not, and real modalities do leave some out.
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
                 "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
_TYPE1_NEEDED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


class UnusableSource(ValueError):
    """The source dataset lacks a UID that results must reference; no DICOM results are made."""


def prepare_source(source: Dataset) -> Dataset:
    """A shallow copy of ``source`` with missing Type 2 attributes present and empty."""
    missing = [k for k in _TYPE1_NEEDED if not str(source.get(k, "") or "").strip()]
    if missing:
        raise UnusableSource(f"source dataset lacks {', '.join(missing)}")
    ds = Dataset()
    ds.update(source)
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
