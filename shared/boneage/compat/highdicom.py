"""highdicom internals the SR template relies on (tested on highdicom 0.28; pinned below 0.29).

``report.sr.template`` fills a pre-built SR with one source's patient and study attributes, which
must come out exactly as highdicom's own builder would set them, without running that builder
(~100 ms). highdicom exposes no public API for three of the steps, so they are here, together with
``source_attributes``: what ``highdicom.base.SOPClass.__init__`` (with
``copy_patient_and_study_information`` and ``_add_contributing_equipment``) sets from the first
evidence dataset, redone attribute by attribute. ``tests/unit/compat/test_compat_highdicom.py``
compares it with highdicom's own output.
"""

from __future__ import annotations

import datetime
import functools

from highdicom import ContributingEquipment
from highdicom._standard_utils import get_iod_module_map, get_module_attribute_map, get_sop_class_iod_map
from highdicom.enum import PatientSexValues
from highdicom.sr.content import _check_valid_source_image_dataset
from highdicom.valuerep import _check_specific_character_set
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.valuerep import DA, DT, TM

# What SOPClass.__init__ sets from the first evidence dataset (before it copies the patient and
# study modules over them).
FROM_EVIDENCE = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                 "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
_FROM_EVIDENCE_TAGS = frozenset(int(tag_for_keyword(k)) for k in FROM_EVIDENCE)
_CONTRIBUTING_EQUIPMENT = int(tag_for_keyword("ContributingEquipmentSequence"))
_CHARSET = int(tag_for_keyword("SpecificCharacterSet"))


@functools.lru_cache(maxsize=64)
def patient_and_study_tags(sop_class_uid: str) -> tuple[int, ...]:
    """Root attributes of the Patient and Study IE modules of ``sop_class_uid``'s IOD, in the order
    highdicom's ``copy_patient_and_study_information`` copies them (KeyError for an unknown class,
    as there)."""
    iod = get_sop_class_iod_map()[sop_class_uid]
    module_attributes = get_module_attribute_map()
    tags: list[int] = []
    for ie in ("Patient", "Study"):
        for module in get_iod_module_map()[iod]:
            if module["ie"] != ie:
                continue
            tags.extend(int(tag_for_keyword(str(a["keyword"]))) for a in module_attributes[module["key"]]
                        if len(a["path"]) == 0)
    return tuple(tags)


def source_attribute_tags(sop_class_uid: str) -> frozenset[int]:
    """Every top-level tag ``source_attributes`` may set for a source of ``sop_class_uid``."""
    return _FROM_EVIDENCE_TAGS | set(patient_and_study_tags(sop_class_uid)) | {_CONTRIBUTING_EQUIPMENT, _CHARSET}


def check_source_image(source: Dataset) -> None:
    """ValueError where highdicom refuses ``source`` as a measurement group's source image."""
    _check_valid_source_image_dataset(source)


def specific_character_set(value: str | list[str]) -> str | list[str]:
    """The Specific Character Set as highdicom writes it (ValueError for one it refuses)."""
    return _check_specific_character_set(value)


def source_attributes(source: Dataset, created: datetime.datetime) -> Dataset:
    """The top-level attributes highdicom's SR takes from ``source``, set the way it sets them.

    Raises where highdicom raises (an invalid sex or date, a source that is not an image, an
    unknown SOP class). ``created`` is the contributing-equipment time highdicom stamps.
    """
    check_source_image(source)       # as SourceImageForMeasurementGroup does
    ds = Dataset()
    # As SOPClass.__init__ does (it validates too: an invalid sex or date raises there and here).
    ds.PatientID = source.PatientID
    ds.PatientName = source.PatientName
    ds.PatientBirthDate = DA(source.PatientBirthDate)
    sex = source.PatientSex
    if sex is not None and sex != "":
        sex = PatientSexValues(sex).value
    ds.PatientSex = sex
    ds.StudyInstanceUID = str(source.StudyInstanceUID)
    ds.AccessionNumber = source.AccessionNumber
    ds.StudyID = source.StudyID
    ds.StudyDate = DA(source.StudyDate) if source.StudyDate is not None else None
    ds.StudyTime = TM(source.StudyTime) if source.StudyTime is not None else None
    ds.ReferringPhysicianName = getattr(source, "ReferringPhysicianName", None)
    charset = source.get("SpecificCharacterSet")
    if charset is not None:
        ds.SpecificCharacterSet = specific_character_set(charset)
    # copy_patient_and_study_information: the source's own elements win.
    for tag in patient_and_study_tags(source.SOPClassUID):
        if tag in source:
            ds.add(source[tag])
    # _add_contributing_equipment: the source's acquisition equipment when it has any, then highdicom.
    equipment = []
    try:
        equipment.append(ContributingEquipment.for_image_acquisition(source))
    except Exception:  # noqa: BLE001 - highdicom skips the item on any failure; so do we
        pass
    library = ContributingEquipment.for_highdicom()
    library.ContributionDateTime = DT(created)
    equipment.append(library)
    ds.ContributingEquipmentSequence = equipment
    return ds


__all__ = ["FROM_EVIDENCE", "check_source_image", "patient_and_study_tags", "source_attribute_tags",
           "source_attributes", "specific_character_set"]
