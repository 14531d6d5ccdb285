"""Contract of ``boneage.compat.highdicom``: the highdicom internals the SR template uses keep their
shape, and ``source_attributes`` sets exactly what highdicom's own SR builder takes from a source.

The byte-for-byte comparison of whole SRs is ``tests/unit/report/test_report_sr_template.py``;
this pins the part that re-implements highdicom, against highdicom, source by source.
"""

from __future__ import annotations

import datetime as dt

import highdicom as hd
import numpy as np
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation

from boneage.compat import highdicom as compat
from boneage.phantom.dataset import sample_record
from boneage.phantom.dicom import build_dataset
from boneage.report.derived import prepare_source
from boneage.report.sr.builder import build_dataset as build_sr_dataset
from boneage.report.sr.content import SRIdentity
from boneage.result import COMPLETED, AssessmentResult

IDENTITY = SRIdentity("2.25.1001", "2.25.1002", "2.25.1003", "2.25.1004", dt.datetime(2025, 1, 2, 3, 4, 5, 6))
RESULT = AssessmentResult(source="contract", status=COMPLETED, bone_age_months=100.0, model_version="v1",
                          demo_model=True)


def _phantom(modality: str, **changes: object) -> Dataset:
    img, labels = sample_record(5, 0, size=64, mix={"left": 1.0})
    ds = build_dataset(img, dict(labels, modality=modality), seed=5)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


SOURCES = {
    "dx": lambda: _phantom("DX"),
    "cr": lambda: _phantom("CR"),
    "utf8": lambda: _phantom("DX", SpecificCharacterSet="ISO_IR 192", PatientName="Ærøskøbing^Zoë"),
    "no_charset_no_manufacturer": lambda: _phantom("CR", SpecificCharacterSet=None, Manufacturer=None,
                                                    StudyTime=None, AccessionNumber=None),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_source_attributes_are_what_highdicom_sets_from_the_source(name: str) -> None:
    source = prepare_source(SOURCES[name]())
    sr = build_sr_dataset(source, RESULT, IDENTITY)
    attributes = compat.source_attributes(source, IDENTITY.created)
    for tag in attributes.keys():
        assert attributes[tag] == sr[tag], attributes[tag].keyword
    taken = {tag for tag in sr.keys() if tag in compat.source_attribute_tags(source.SOPClassUID)}
    assert taken <= set(attributes.keys())


def test_an_invalid_patient_sex_is_refused_as_highdicom_refuses_it() -> None:
    # prepare_source empties an invalid sex (report.conform); the compat layer itself still refuses
    # what highdicom's SOPClass refuses.
    source = _phantom("DX", PatientSex="X")
    with pytest.raises(ValueError, match="PatientSexValues"):
        # highdicom's SOPClass refuses it for any object made from the source; the SC is the shortest.
        hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source, pixel_array=np.zeros((4, 4), np.uint8), photometric_interpretation="MONOCHROME2",
            bits_allocated=8, coordinate_system="PATIENT", patient_orientation=("A", "F"),
            series_instance_uid="2.25.1", series_number=1,
            sop_instance_uid="2.25.2", instance_number=1, manufacturer="m")
    with pytest.raises(ValueError, match="PatientSexValues"):
        compat.source_attributes(source, IDENTITY.created)
    assert prepare_source(source).PatientSex == ""


def test_patient_and_study_module_tags_come_from_the_iod() -> None:
    for sop_class in (ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation):
        tags = compat.patient_and_study_tags(sop_class)
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyDate"):
            assert tag_for_keyword(keyword) in tags
        assert tag_for_keyword("SOPInstanceUID") not in tags and tag_for_keyword("Rows") not in tags
        assert len(tags) == len(set(tags))
    with pytest.raises(KeyError):
        compat.patient_and_study_tags("1.2.3.4")


def test_a_source_without_pixel_description_is_not_a_source_image() -> None:
    compat.check_source_image(_phantom("CR"))
    not_an_image = Dataset()
    not_an_image.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    not_an_image.Modality = "SR"
    with pytest.raises(ValueError):
        compat.check_source_image(not_an_image)


def test_specific_character_sets_are_checked_and_kept() -> None:
    assert compat.specific_character_set("ISO_IR 192") == "ISO_IR 192"
    assert list(compat.specific_character_set(["ISO 2022 IR 6", "ISO 2022 IR 87"])) == ["ISO 2022 IR 6",
                                                                                      "ISO 2022 IR 87"]
    with pytest.raises(ValueError):
        compat.specific_character_set("NOT A CHARSET")

