"""Hostile header text: values longer than their DICOM VR allows are dropped, control and bidi
characters never survive into what we keep, and warnings name the attribute, never the value."""

from __future__ import annotations

import pytest

from boneage.imaging import ingest, testing
from boneage.imaging.text import VR_MAX_CHARS
from boneage.safetext import clean, is_clean

from .corpus import source

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")     # pydicom warns about the values we write on purpose

FAKE_LINK = "\r\nReport: https://evil.example/phish\r\n"


def _meta(**tags):
    data = testing.dicom_bytes(source(12), bits_stored=12, tags=tags)
    return ingest(data, target_long_side=64).meta


def test_a_30_kb_accession_number_with_line_breaks_is_dropped_with_a_warning():
    meta = _meta(AccessionNumber=("A" * 100 + FAKE_LINK) * 220)
    assert meta.accession_number is None and meta.study_reference is None
    assert "AccessionNumber is longer than its DICOM limit of 16 characters; ignored" in meta.warnings
    assert not any("evil" in w or "AAAA" in w for w in meta.warnings)


def test_control_and_bidi_characters_are_stripped_from_header_values():
    meta = _meta(SpecificCharacterSet="ISO_IR 192", AccessionNumber="AC\u202eC1\x00\x1b2\n3",
                 BodyPartExamined="HA\x7fND")
    assert meta.accession_number == "ACC12 3" and meta.body_part == "HAND"
    assert meta.study_reference == "ACC12 3"


def test_a_value_at_its_vr_limit_is_kept():
    meta = _meta(AccessionNumber="A" * VR_MAX_CHARS["SH"], StudyInstanceUID="1." + "2" * 62)
    assert meta.accession_number == "A" * 16 and meta.study_instance_uid == "1." + "2" * 62


def test_vr_limits_are_those_of_ps3_5_table_6_2_1():
    assert {vr: VR_MAX_CHARS[vr] for vr in ("AE", "AS", "CS", "DA", "DS", "IS", "LO", "LT", "SH", "ST", "UI")} == {
        "AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "IS": 12, "LO": 64, "LT": 10240, "SH": 16, "ST": 1024,
        "UI": 64}


@pytest.mark.parametrize("raw,expected", [
    ("ref-7", "ref-7"), ("a\r\nb", "a b"), ("\u202eevil\u202c", "evil"), ("x\x85y\u2028z", "x y z"),
    ("\x00\x01\x7f\x9b", ""), ("Ré\u200df", "Réf"), ("  tabs\t\tand  spaces ", "tabs and spaces"),
])
def test_clean_removes_control_and_format_characters(raw, expected):
    assert clean(raw) == expected and is_clean(clean(raw))


@pytest.mark.parametrize("tags,reason", [
    ({"Modality": "CT"}, "unsupported_modality"),
    ({"Modality": "C\r\nT evil.example"}, "unsupported_modality"),
    ({"PhotometricInterpretation": "HSV\r\nReport: evil.example"}, "unsupported_photometric"),
])
def test_rejection_messages_quote_only_well_formed_codes(tags, reason):
    from boneage.errors import Rejection

    data = testing.dicom_bytes(source(12), bits_stored=12, tags=tags)
    with pytest.raises(Rejection) as exc:
        ingest(data, target_long_side=64)
    assert exc.value.reason == reason and is_clean(exc.value.message) and "evil" not in exc.value.message
    if tags.get("Modality") == "CT":
        assert "modality CT is not" in exc.value.message
