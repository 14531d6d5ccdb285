"""A hostile or sloppy source header: the SC and SR copy only values valid for their VR.

The source is written as a modality would send it (pydicom's own validation off, so the bytes carry
the invalid values) and read back, then goes through ``build_reports``. What is checked on the
results: they parse, every string value passes pydicom's validators for its VR and its dictionary
VM, control characters are gone, the invalid values are nowhere in the bytes, prose is cut to its
VR's length, dciodvfy finds no error, and the template SR is still highdicom's SR byte for byte.
"""

from __future__ import annotations

import datetime as dt
import io
import re

import pydicom
import pytest
from pydicom import config
from pydicom.datadict import dictionary_VM
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value

from boneage.report import REPORT_PNG, REPORT_SC, REPORT_SR, build_reports
from boneage.report.conform import conforming_copy
from boneage.report.sr import build_sr, builder
from boneage.report.sr.content import SRIdentity

from .cases import make_case
from .test_report_dicom import _dciodvfy

LONG_PATIENT_ID = "PID-" + "7" * 66                      # LO, 70 > 64
LONG_NAME = "Zqxwvutsrqponmlkjihgfedcbazyxwvutsrqponmlkjihgfedcbazyxwvutsrqpon^Bea"   # PN group 69 > 64
LONG_ACCESSION = "ACC-20241203-9981"                     # SH, 17 > 16
LONG_SEX = "FEMALE-AS-WRITTEN"                           # CS, 17 > 16
STUDY_DESCRIPTION = "Left\thand\x07 bone age " + "very long protocol text " * 4
INSTITUTION = "Saint Hildegard of the Very Long Institution Name Regional Hospital Trust"   # LO, 72 > 64
# A patient identity that is not valid DICOM: no DICOM results at all (they would not reconcile).
HOSTILE_IDENTITY = {
    "PatientID": ("LO", LONG_PATIENT_ID),
    "PatientName": ("PN", LONG_NAME),
}
HOSTILE = {
    # keyword: (VR as written, value as written)
    "AccessionNumber": ("SH", LONG_ACCESSION),
    "PatientSex": ("CS", LONG_SEX),
    "StudyID": ("SH", "12\\34"),                         # a backslash in a single-valued attribute
    "ReferringPhysicianName": ("PN", "Dr\x07Nobody"),    # a control character in a name
    "PatientBirthDate": ("LO", "yesterday"),             # the wrong VR, and not a date
    "StudyDate": ("DA", "2024-12-03"),                   # not a DA
    "StudyDescription": ("LO", STUDY_DESCRIPTION),       # prose: control characters and too long
    "InstitutionName": ("LO", INSTITUTION),              # prose, copied into the SR's equipment item
    "StationName": ("SH", "STATION-NAME-TOO-LONG"),      # SH, 21 > 16: an identifier, not cut
}
INVALID_UID = "1.2.840.10008.abc.7"


def _as_sent(ds: Dataset) -> Dataset:
    """``ds`` written without validation and read back: the bytes a sloppy sender puts on the wire."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False, implicit_vr=False, little_endian=True)
    buf.seek(0)
    return pydicom.dcmread(buf, force=True)


@pytest.fixture
def no_validation(monkeypatch):
    monkeypatch.setattr(config.settings, "writing_validation_mode", config.IGNORE)
    monkeypatch.setattr(config.settings, "reading_validation_mode", config.IGNORE)


def _hostile_case(rng, hostile=HOSTILE):
    radiograph, output, result = make_case(rng)
    ds = radiograph.dataset
    for keyword, (vr, value) in hostile.items():
        tag = pydicom.datadict.tag_for_keyword(keyword)
        ds[tag] = DataElement(tag, vr, value, validation_mode=config.IGNORE)
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.add(DataElement(0x00081155, "UI", INVALID_UID, validation_mode=config.IGNORE))
    ds.ReferencedStudySequence = [study]
    radiograph.dataset = _as_sent(ds)
    return radiograph, output, result


def _string_elements(ds: Dataset):
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _string_elements(item)
        elif elem.VR in ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
                         "UC", "UI", "UR", "UT"):
            yield elem


def _assert_conforms(ds: Dataset, name: str) -> None:
    for elem in _string_elements(ds):
        values = elem.value if isinstance(elem.value, pydicom.multival.MultiValue) else [elem.value]
        if not elem.tag.is_private:
            vm = dictionary_VM(elem.tag)
            if vm == "1":
                assert len(values) <= 1, f"{name} {elem.keyword}: {len(values)} values"
        for value in values:
            text = str(value)
            # pydicom's validators, raising, on the text as written: length, characters.
            validate_value(elem.VR, text, config.RAISE)
            allowed = "\t\n\x0c\r\x1b" if elem.VR in ("LT", "ST", "UT") else "\x1b"
            assert not [c for c in text if (ord(c) < 0x20 or c == "\x7f") and c not in allowed], \
                f"{name} {elem.keyword}: control character"
            if elem.VR == "PN":
                assert all(len(group) <= 64 for group in text.split("=")), f"{name} {elem.keyword}"


def test_hostile_source_values_are_left_out_or_repaired_and_results_stay_valid(rng, tmp_path, no_validation):
    radiograph, output, result = _hostile_case(rng)
    files = build_reports(radiograph, output, result)
    assert set(files) == {REPORT_PNG, REPORT_SC, REPORT_SR} and result.warnings == []
    source = radiograph.dataset
    for name in (REPORT_SC, REPORT_SR):
        data = files[name]
        ds = pydicom.dcmread(io.BytesIO(data))
        _assert_conforms(ds, name)
        # Invalid identifiers are left out (Type 2: present, empty), never cut or altered.
        assert ds.PatientID == source.PatientID and ds.PatientName == source.PatientName
        for keyword in ("AccessionNumber", "PatientSex", "StudyID",
                        "ReferringPhysicianName", "PatientBirthDate", "StudyDate"):
            assert ds[keyword].value in ("", None), f"{name} {keyword}"
        for raw in (LONG_PATIENT_ID, LONG_PATIENT_ID[:64], LONG_NAME.split("^")[0], LONG_ACCESSION,
                    LONG_ACCESSION[:16], LONG_SEX, "STATION-NAME", INVALID_UID, "Nobody", "yesterday"):
            assert raw.encode() not in data, f"{name} carries {raw!r}"
        # Still in the source's study, referencing the source image.
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        path = tmp_path / name
        path.write_bytes(data)
        errors, warnings = _dciodvfy(path)
        assert errors == [], f"{name}: {errors}"
        # Known and accepted: the private coding scheme, and the empty identifiers a DICOMDIR would want.
        assert all("99BONEAGE" in w or "needed to build DICOMDIR" in w for w in warnings), \
            f"{name}: unexpected warnings {warnings}"

    sr = pydicom.dcmread(io.BytesIO(files[REPORT_SR]))
    # Prose is repaired by the documented rule: control characters become spaces, cut to LO's 64.
    expected = re.sub(r"[\t\x07]", " ", STUDY_DESCRIPTION)[:64].rstrip()
    assert sr.StudyDescription == expected and len(expected) == 64
    acquisition = sr.ContributingEquipmentSequence[0]
    assert acquisition.Manufacturer == "Synthetic"
    assert acquisition.InstitutionName == INSTITUTION[:64].rstrip()
    assert "StationName" not in acquisition
    # The sequence holding an invalid UID is left out whole.
    assert "ReferencedStudySequence" not in sr


def test_template_sr_equals_highdicom_sr_for_a_hostile_source(rng, no_validation):
    radiograph, _, result = _hostile_case(rng)
    identity = SRIdentity("2.25.71", "2.25.72", "2.25.73", "2.25.74", dt.datetime(2025, 3, 4, 5, 6, 7, 8))
    assert build_sr(radiograph.dataset, result, identity) == builder.build_from_scratch(
        radiograph.dataset, result, identity)


@pytest.mark.parametrize("keyword", sorted(HOSTILE_IDENTITY))
def test_an_invalid_patient_identity_gives_png_only(rng, no_validation, keyword):
    radiograph, output, result = _hostile_case(rng, {keyword: HOSTILE_IDENTITY[keyword]})
    files = build_reports(radiograph, output, result)
    # Results under an empty identity would not reconcile with the patient's study: none at all.
    assert set(files) == {REPORT_PNG}
    assert result.warnings == ["DICOM results (SC/SR) not produced: UnusableSource"]


def test_a_patient_name_outside_the_character_set_gives_png_only(rng, no_validation):
    radiograph, output, result = _hostile_case(rng, {"PatientName": ("PN", "Müller^Zoë")})
    assert "SpecificCharacterSet" not in radiograph.dataset
    assert set(build_reports(radiograph, output, result)) == {REPORT_PNG}


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SOPInstanceUID", "SeriesInstanceUID"])
@pytest.mark.parametrize("uid", [INVALID_UID, "1.2.840.0113619.2", "1.2." + "9" * 63, "1.2.3."])
def test_an_invalid_uid_the_results_reference_gives_png_only(rng, no_validation, keyword, uid):
    radiograph, output, result = make_case(rng)
    tag = pydicom.datadict.tag_for_keyword(keyword)
    radiograph.dataset[tag] = DataElement(tag, "UI", uid, validation_mode=config.IGNORE)
    radiograph.dataset = _as_sent(radiograph.dataset)
    files = build_reports(radiograph, output, result)
    # Results join the source's study or none: never a study of our own making.
    assert set(files) == {REPORT_PNG}
    assert result.warnings == ["DICOM results (SC/SR) not produced: UnusableSource"]


def _source(**values) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_valid_values_are_copied_unchanged(no_validation):
    source = _source(ImageType=["DERIVED", "PRIMARY"], PatientAge="010Y", PatientWeight="31.50",
                     PixelSpacing=["0.143", "0.143"], StudyTime="101500.25", PatientComments="line one\nline two",
                     SpecificCharacterSet="ISO_IR 192", PatientName="Müller^Zoë", Rows=16)
    copy = conforming_copy(source)
    for keyword in ("ImageType", "PatientAge", "PatientWeight", "PixelSpacing", "StudyTime", "PatientComments",
                    "SpecificCharacterSet", "PatientName", "Rows"):
        assert copy[keyword].value == source[keyword].value, keyword
    assert copy.PatientWeight.original_string == "31.50"


def test_each_rule_on_its_own(no_validation):
    source = _source(
        PixelSpacing=["0.1", "0.1", "0.1"],         # VM 2, three values
        StudyDate="20241203-",                       # a query range
        StudyTime="256000",                          # not a time
        PatientBirthDate="20230229",                 # not on the calendar
        BodyPartExamined="hand",                     # CS is upper case
        PatientName="A^B^C^D^E^F",                   # six components
        PatientComments="tab\tand\x00null",          # LT: TAB allowed, NUL replaced (prose)
        ImageComments="x" * 10300,                   # LT prose, cut to 10240
        OperatorsName="Smith^Ann",
    )
    source.add(DataElement(0x00091010, "LO", "private\x07value", validation_mode=config.IGNORE))
    copy = conforming_copy(source)
    for keyword in ("PixelSpacing", "StudyDate", "StudyTime", "PatientBirthDate", "BodyPartExamined",
                    "PatientName"):
        assert keyword not in copy, keyword
    assert copy.PatientComments == "tab\tand null"
    assert len(copy.ImageComments) == 10240
    assert str(copy.OperatorsName) == "Smith^Ann"
    assert 0x00091010 not in copy                    # private elements are never copied


def test_without_a_usable_character_set_only_ascii_text_is_copied(no_validation):
    no_charset = conforming_copy(_source(PatientName="Müller^Zoë", PatientID="P1"))
    assert "PatientName" not in no_charset and no_charset.PatientID == "P1"
    refused = conforming_copy(_source(SpecificCharacterSet="ISO_IR 999", PatientName="Muller^Zoe",
                                      InstitutionName="Klinik Köln"))
    assert "SpecificCharacterSet" not in refused and str(refused.PatientName) == "Muller^Zoe"
    assert "InstitutionName" not in refused


def test_the_source_dataset_is_not_modified(rng, no_validation):
    radiograph, _, _ = _hostile_case(rng)
    before = {elem.tag: elem.value for elem in radiograph.dataset if elem.VR != "SQ"}
    conforming_copy(radiograph.dataset)
    assert {elem.tag: elem.value for elem in radiograph.dataset if elem.VR != "SQ"} == before


def test_escape_is_kept_only_under_an_iso_2022_character_set():
    assert "PatientID" not in conforming_copy(_source(PatientID="P\x1b1"))
    assert "PatientID" not in conforming_copy(_source(SpecificCharacterSet="ISO_IR 192", PatientID="P\x1b1"))
    kept = conforming_copy(_source(SpecificCharacterSet=["ISO 2022 IR 6", "ISO 2022 IR 100"], PatientID="P\x1b1"))
    assert kept.PatientID == "P\x1b1"


@pytest.mark.parametrize("value, kept", [
    ("20200101120000", True), ("20200101120000.5-0500", True), ("20200101+1400", True),
    ("2020-2021", False), ("20200101-", False), ("-2021", False), ("20200101-1500", False),
])
def test_a_date_time_keeps_an_offset_and_refuses_a_range(no_validation, value, kept):
    out = conforming_copy(_as_sent(_source(AcquisitionDateTime=value)))
    assert ("AcquisitionDateTime" in out) is kept
