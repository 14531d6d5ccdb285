"""What the Structured Report says: its codes, its measurements for a result, and its identity.

SR content follows TID 1500 (Measurement Report) with one measurement group for the hand. DICOM
has no standard codes for bone age, chronological age or bone age SDS that we could verify
offline, so those concepts use a private coding scheme (``99BONEAGE``, declared in the SR's Coding
Scheme Identification Sequence, as PS3.16 allows); units are UCUM and the finding site is SNOMED CT
(both from pydicom's code dictionary). The model version is the measurement's algorithm
identification.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from boneage.result import AssessmentResult

ALGORITHM_NAME = "boneage two-stage hand detector + bone age regressor"
SR_SERIES_NUMBER = 9002

PRIVATE_SCHEME = "99BONEAGE"


def _code(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=PRIVATE_SCHEME, meaning=meaning)


CODE_PROCEDURE = _code("BAA", "Bone age assessment")
CODE_BONE_AGE = _code("BA", "Bone age")
CODE_BONE_AGE_LOW = _code("BA-L90", "Bone age 90% interval lower limit")
CODE_BONE_AGE_HIGH = _code("BA-H90", "Bone age 90% interval upper limit")
CODE_CHRONOLOGICAL_AGE = _code("CA", "Chronological age")
CODE_BA_MINUS_CA = _code("BA-CA", "Bone age minus chronological age")
CODE_SDS = _code("BA-SDS", "Bone age standard deviation score")
CODE_ADULT_HEIGHT = _code("PAH", "Predicted adult height")
CODE_INTERPRETATION = _code("BA-INT", "Bone age interpretation")
CODE_FLAGS = {
    "delayed": _code("BA-DEL", "Delayed bone age"),
    "advanced": _code("BA-ADV", "Advanced bone age"),
    "within_normal_limits": _code("BA-WNL", "Bone age within normal limits"),
}
UNIT_MONTH = hd.sr.CodedConcept.from_code(codes.UCUM.Month)
UNIT_NONE = hd.sr.CodedConcept.from_code(codes.UCUM.NoUnits)
UNIT_CM = hd.sr.CodedConcept(value="cm", scheme_designator="UCUM", meaning="centimeter")


def coding_scheme_identification() -> Dataset:
    """The Coding Scheme Identification Sequence item that declares ``PRIVATE_SCHEME``."""
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "boneage service local codes"
    item.CodingSchemeResponsibleOrganization = "boneage open-source project"
    return item


@dataclass(frozen=True)
class SRIdentity:
    """What is new in every SR: its own UIDs and the moment it was made. Tests inject fixed ones."""

    series_instance_uid: str
    sop_instance_uid: str
    tracking_uid: str
    observer_uid: str
    created: datetime.datetime

    @classmethod
    def fresh(cls) -> "SRIdentity":
        return cls(hd.UID(), hd.UID(), hd.UID(), hd.UID(), datetime.datetime.now())


def sr_measurements(result: AssessmentResult) -> list[tuple[hd.sr.CodedConcept, float, hd.sr.CodedConcept]]:
    """(concept, value, unit) of each NUM item the SR carries for ``result``, in content order."""
    found: list[tuple[hd.sr.CodedConcept, float, hd.sr.CodedConcept]] = []
    if result.bone_age_months is not None:
        found.append((CODE_BONE_AGE, result.bone_age_months, UNIT_MONTH))
    if result.bone_age_interval_months:
        found.append((CODE_BONE_AGE_LOW, result.bone_age_interval_months[0], UNIT_MONTH))
        found.append((CODE_BONE_AGE_HIGH, result.bone_age_interval_months[1], UNIT_MONTH))
    if result.chronological_age_months is not None:
        found.append((CODE_CHRONOLOGICAL_AGE, result.chronological_age_months, UNIT_MONTH))
        if result.bone_age_months is not None:
            found.append((CODE_BA_MINUS_CA, result.bone_age_months - result.chronological_age_months, UNIT_MONTH))
    if result.sds is not None:
        found.append((CODE_SDS, result.sds, UNIT_NONE))
    if result.predicted_adult_height_cm is not None:
        found.append((CODE_ADULT_HEIGHT, result.predicted_adult_height_cm, UNIT_CM))
    return [(name, float(round(value, 4)), unit) for name, value, unit in found]
