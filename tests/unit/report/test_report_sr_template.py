"""The SR made from a per-shape template is byte for byte the SR highdicom builds from scratch.

Identity (UIDs, creation time) is injected so both paths can be compared exactly; shapes, values
and sources vary: CR and DX phantoms through ingest, a constructed CR, a UTF-8 source, a source
without its Type 2 attributes. The template never carries one patient's data into another's SR.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io

import pydicom
import pytest

from boneage.report.sr import SRIdentity, build_sr, builder, template

from .cases import PATIENT_ID, PATIENT_NAME, make_case, source_dataset


def _identity(n: int, microsecond: int = 123456) -> SRIdentity:
    n += 1000       # UID components have no leading zero
    return SRIdentity(f"2.25.{n}1", f"2.25.{n}2", f"2.25.{n}3", f"2.25.{n}4",
                            dt.datetime(2025, 1, 2, 3, 4, 5, microsecond))


def _differences(a: pydicom.Dataset, b: pydicom.Dataset, path: str = "") -> list[str]:
    found = [f"{path}{tag} only in one" for tag in set(a.keys()) ^ set(b.keys())]
    for tag in sorted(set(a.keys()) & set(b.keys())):
        ea, eb = a[tag], b[tag]
        if ea.VR == "SQ" and eb.VR == "SQ" and len(ea.value) == len(eb.value):
            for i, (ia, ib) in enumerate(zip(ea.value, eb.value)):
                found += _differences(ia, ib, f"{path}{ea.keyword}[{i}].")
        elif ea != eb:
            found.append(f"{path}{ea.keyword}: {ea.value!r} != {eb.value!r}")
    return found


def _assert_same_as_from_scratch(source: pydicom.Dataset, result, identity: SRIdentity) -> bytes:
    expected = builder.build_from_scratch(source, result, identity)
    got = build_sr(source, result, identity)
    parsed_expected, parsed_got = pydicom.dcmread(io.BytesIO(expected)), pydicom.dcmread(io.BytesIO(got))
    assert _differences(parsed_expected.file_meta, parsed_got.file_meta) == []
    assert _differences(parsed_expected, parsed_got) == []
    assert got == expected
    return got


def _variants(result):
    """The same assessment in other shapes and with other values."""
    r = dataclasses.replace
    yield result
    yield r(result, bone_age_months=97.3, bone_age_interval_months=[88.04, 106.6], sds=-2.31,
            interpretation="delayed", predicted_adult_height_cm=171.2)
    yield r(result, bone_age_interval_months=None, interpretation="advanced", sds=2.05)
    yield r(result, sds=None, interpretation=None, predicted_adult_height_cm=None)
    yield r(result, chronological_age_months=None, sds=None, interpretation=None)
    yield r(result, laterality="R", demo_model=False, model_version="v2.0+deadbeef")
    yield r(result, laterality=None, bone_age_months=12.0, chronological_age_months=1.0 / 3.0)


def test_template_sr_equals_from_scratch_sr_for_every_shape_and_value(rng):
    template.clear_templates()
    radiograph, _, result = make_case(rng)
    for n, variant in enumerate(_variants(result)):
        _assert_same_as_from_scratch(radiograph.dataset, variant, _identity(n))
    # Second round: the templates are now warm; other identities, a time with no fraction.
    for n, variant in enumerate(_variants(result)):
        _assert_same_as_from_scratch(radiograph.dataset, variant, _identity(100 + n, microsecond=0))


@pytest.mark.parametrize("sex,with_age", [("F", True), (None, True), ("M", False)])
def test_template_sr_equals_from_scratch_sr_for_case_inputs(rng, sex, with_age):
    radiograph, _, result = make_case(rng, sex=sex, with_age=with_age)
    _assert_same_as_from_scratch(radiograph.dataset, result, _identity(7))


def test_template_sr_equals_from_scratch_sr_for_cr_and_dx_phantoms_through_ingest(tmp_path):
    from boneage.clinical import interpret
    from boneage.imaging import ingest
    from boneage.phantom import generate_dataset
    from boneage.result import COMPLETED, AssessmentResult

    out = generate_dataset(tmp_path / "set", count=4, seed=11, fmt="dicom", size=256, mix={"left": 1.0})
    kinds = set()
    for n, row in enumerate(csv.DictReader((out / "labels.csv").open())):
        radiograph = ingest((out / "dicom" / f"{row['id']}.dcm").read_bytes())
        source, meta = radiograph.dataset, radiograph.meta
        kinds.add(source.Modality)
        ba = float(row["boneage"])
        interp = interpret(ba, (ba - 9, ba + 9), meta.sex, meta.chronological_age_months)
        result = AssessmentResult(
            source="p.dcm", status=COMPLETED, bone_age_months=ba, bone_age_interval_months=[ba - 9, ba + 9],
            sex=meta.sex, chronological_age_months=meta.chronological_age_months, sds=interp.sds,
            interpretation=interp.flag, laterality=meta.laterality, model_version="phantom-test")
        _assert_same_as_from_scratch(source, result, _identity(20 + n))
    assert {"CR", "DX"} <= kinds


def test_template_sr_equals_from_scratch_sr_for_utf8_and_sparse_sources(rng):
    radiograph, _, result = make_case(rng)
    utf8 = source_dataset(rng)
    utf8.SpecificCharacterSet = "ISO_IR 192"
    utf8.PatientName = "Müller^Zoë"
    utf8.PatientAge = "010Y"
    utf8.PatientWeight = "31.5"
    utf8.StudyDescription = "Handröntgen links"
    _assert_same_as_from_scratch(utf8, result, _identity(30))
    sparse = source_dataset(rng)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "AccessionNumber", "StudyID", "ReferringPhysicianName", "Manufacturer"):
        delattr(sparse, keyword)
    _assert_same_as_from_scratch(sparse, result, _identity(31))
    assert "PatientID" not in sparse          # the caller's dataset is not modified


def test_template_sr_rejects_what_highdicom_rejects(rng):
    radiograph, _, result = make_case(rng)
    # Not an image (an invalid sex no longer gets this far: ``conform`` empties it for both paths).
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "PixelRepresentation"):
        delattr(radiograph.dataset, keyword)
    with pytest.raises(ValueError):
        builder.build_from_scratch(radiograph.dataset, result, _identity(40))
    with pytest.raises(ValueError):
        build_sr(radiograph.dataset, result, _identity(40))


def test_consecutive_patients_each_get_only_their_own_patient_module(rng):
    radiograph, _, result = make_case(rng)
    first = radiograph.dataset
    second = source_dataset(rng)
    second.PatientName, second.PatientID, second.PatientBirthDate = "Qwertyuio^Bartholomew", "PID-55501234", "20120229"
    second.AccessionNumber, second.StudyDate = "ACC-SECOND-77", "20250101"
    first_sr = build_sr(first, result, _identity(50))
    second_sr = build_sr(second, result, _identity(51))
    again_first_sr = build_sr(first, result, _identity(52))
    for sr, own, other in ((first_sr, first, second), (second_sr, second, first), (again_first_sr, first, second)):
        parsed = pydicom.dcmread(io.BytesIO(sr))
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "StudyDate",
                        "StudyInstanceUID"):
            assert parsed[keyword].value == own[keyword].value
            assert str(other[keyword].value).encode() not in sr, f"{keyword} of the other patient leaked"
    assert PATIENT_NAME.encode() in first_sr and PATIENT_ID.encode() not in second_sr


def test_templates_hold_no_patient_or_study_values(rng):
    radiograph, _, result = make_case(rng)
    build_sr(radiograph.dataset, result, _identity(60))
    source = radiograph.dataset
    held = repr(template._templates).encode() + b"".join(
        p for t in template._templates.values() for p in t.top.values() if isinstance(p, bytes))
    for value in (str(source.PatientName), source.PatientID, source.PatientBirthDate, source.AccessionNumber,
                  source.StudyInstanceUID, source.SeriesInstanceUID, source.SOPInstanceUID, "131"):
        assert value.encode() not in held, value


def test_sr_without_identity_gets_fresh_uids_each_call(rng):
    radiograph, _, result = make_case(rng)
    a = pydicom.dcmread(io.BytesIO(build_sr(radiograph.dataset, result)))
    b = pydicom.dcmread(io.BytesIO(build_sr(radiograph.dataset, result)))
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.SeriesInstanceUID != b.SeriesInstanceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
