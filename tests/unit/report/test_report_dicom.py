"""DICOM results for PACS: new series of the source study, source referenced, content, dciodvfy clean."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import JPEGLSLossless

from boneage.report import REPORT_PNG, REPORT_SC, REPORT_SR, build_reports

from .cases import BIRTH_DATE, PATIENT_ID, PATIENT_NAME, make_case

SC_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
COMPREHENSIVE_SR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"


def _outputs(rng, **kw):
    radiograph, output, result = make_case(rng, **kw)
    files = build_reports(radiograph, output, result)
    sc = pydicom.dcmread(io.BytesIO(files[REPORT_SC]))
    sr = pydicom.dcmread(io.BytesIO(files[REPORT_SR]))
    return radiograph.dataset, result, files, sc, sr


def _numeric_items(ds) -> dict[str, tuple[float, str]]:
    """Concept meaning -> (value, unit code) for every NUM item in the SR content tree."""
    found: dict[str, tuple[float, str]] = {}
    stack = list(ds.ContentSequence)
    while stack:
        item = stack.pop()
        if item.ValueType == "NUM":
            mv = item.MeasuredValueSequence[0]
            found[item.ConceptNameCodeSequence[0].CodeMeaning] = (
                float(mv.NumericValue), mv.MeasurementUnitsCodeSequence[0].CodeValue)
        stack.extend(getattr(item, "ContentSequence", []))
    return found


def _text_items(ds) -> dict[str, str]:
    found: dict[str, str] = {}
    stack = list(ds.ContentSequence)
    while stack:
        item = stack.pop()
        name = item.ConceptNameCodeSequence[0].CodeMeaning
        if item.ValueType == "TEXT":
            found[name] = item.TextValue
        elif item.ValueType == "CODE":
            found[name] = item.ConceptCodeSequence[0].CodeMeaning
        stack.extend(getattr(item, "ContentSequence", []))
    return found


def test_both_objects_join_the_source_study_in_new_series(rng):
    source, _, _, sc, sr = _outputs(rng)
    assert sc.SOPClassUID == SC_SOP_CLASS and sr.SOPClassUID == COMPREHENSIVE_SR_SOP_CLASS
    assert sc.StudyInstanceUID == sr.StudyInstanceUID == source.StudyInstanceUID
    series = {source.SeriesInstanceUID, sc.SeriesInstanceUID, sr.SeriesInstanceUID}
    instances = {source.SOPInstanceUID, sc.SOPInstanceUID, sr.SOPInstanceUID}
    assert len(series) == 3 and len(instances) == 3
    assert sc.AccessionNumber == sr.AccessionNumber == source.AccessionNumber
    # How the hospital's gateway knows them when the PACS sends the study back (never re-assessed).
    from boneage.result import MANUFACTURER
    assert sc.Manufacturer == sr.Manufacturer == MANUFACTURER


def test_source_image_is_referenced(rng):
    source, _, _, sc, sr = _outputs(rng)
    ref = sc.SourceImageSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (source.SOPClassUID, source.SOPInstanceUID)
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == source.StudyInstanceUID
    sop = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert sop.ReferencedSOPInstanceUID == source.SOPInstanceUID


def test_patient_module_is_copied_for_the_hospital_pacs(rng):
    _, _, _, sc, sr = _outputs(rng)
    for ds in (sc, sr):
        assert str(ds.PatientName) == PATIENT_NAME
        assert ds.PatientID == PATIENT_ID
        assert ds.PatientBirthDate == BIRTH_DATE
        assert ds.PatientSex == "F"


def test_secondary_capture_pixels_are_the_png_report(rng):
    _, _, files, sc, _ = _outputs(rng)
    png = np.asarray(Image.open(io.BytesIO(files[REPORT_PNG])).convert("RGB"))
    assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
    np.testing.assert_array_equal(sc.pixel_array, png)
    assert "NOT FOR CLINICAL USE" in sc.SeriesDescription


def test_secondary_capture_is_stored_jpeg_ls_lossless_and_decodes_to_the_exact_pixels(rng):
    radiograph, output, result = make_case(rng)
    files = build_reports(radiograph, output, result)
    sc = pydicom.dcmread(io.BytesIO(files[REPORT_SC]))
    assert sc.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert sc.file_meta.TransferSyntaxUID.is_compressed and sc.get("LossyImageCompression", "00") == "00"
    assert sc.PlanarConfiguration == 0 and sc.BitsStored == 8
    png = np.asarray(Image.open(io.BytesIO(files[REPORT_PNG])).convert("RGB"))
    np.testing.assert_array_equal(sc.pixel_array, png)
    # Uncompressed, the 1200 x 800 RGB page alone is 2.88 MB.
    assert len(files[REPORT_SC]) < png.nbytes / 4


def test_structured_report_carries_bone_age_ca_sds_height_flag_and_model_version(rng):
    _, result, _, _, sr = _outputs(rng)
    nums = _numeric_items(sr)
    assert nums["Bone age"] == (131.0, "mo")
    assert nums["Bone age 90% interval lower limit"] == (123.0, "mo")
    assert nums["Bone age 90% interval upper limit"] == (139.0, "mo")
    assert nums["Chronological age"] == (pytest.approx(result.chronological_age_months), "mo")
    assert nums["Bone age standard deviation score"] == (pytest.approx(result.sds), "1")
    assert nums["Predicted adult height"] == (pytest.approx(result.predicted_adult_height_cm), "cm")
    texts = _text_items(sr)
    assert texts["Algorithm Version"] == "demo-0.1+abc123"
    assert texts["Bone age interpretation"] == "Bone age within normal limits"
    # highdicom can read back what it wrote, as a PACS-side consumer would.
    parsed = hd.sr.srread(io.BytesIO(sr_bytes(sr)))
    assert parsed.SeriesInstanceUID == sr.SeriesInstanceUID
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"


def sr_bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_sr_without_sex_omits_sds_but_keeps_bone_age(rng):
    _, _, _, _, sr = _outputs(rng, sex=None)
    nums = _numeric_items(sr)
    assert "Bone age" in nums and "Bone age standard deviation score" not in nums
    assert "Bone age interpretation" not in _text_items(sr)


def _dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.fail("dciodvfy not installed: run `make system-deps` (Debian package dicom3tools)")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]


@pytest.mark.parametrize("sex", ["F", None])
def test_dciodvfy_reports_no_errors_on_sc_and_sr(rng, tmp_path, sex):
    _, _, files, _, _ = _outputs(rng, sex=sex)
    for name in (REPORT_SC, REPORT_SR):
        path = tmp_path / name
        path.write_bytes(files[name])
        errors, warnings = _dciodvfy(path)
        assert errors == [], f"{name}: {errors}"
        # Known and accepted: the SR's private coding scheme (99BONEAGE) is not a DICOM defined term.
        assert all("99BONEAGE" in w for w in warnings), f"{name}: unexpected warnings {warnings}"


def test_dciodvfy_reports_no_errors_on_results_from_phantom_dicoms(tmp_path):
    """CR and DX phantoms (MONOCHROME1 and 2) as ingest hands them over, pixel data dropped."""
    import csv
    import json as _json

    from boneage.clinical import interpret, predict_adult_height
    from boneage.imaging import ingest
    from boneage.model.types import Box, ModelOutput
    from boneage.phantom import generate_dataset
    from boneage.result import COMPLETED, AssessmentResult

    out = generate_dataset(tmp_path / "set", count=4, seed=7, fmt="dicom", size=256, mix={"left": 1.0})
    rows = list(csv.DictReader((out / "labels.csv").open()))
    kinds = set()
    for row in rows:
        data = (out / "dicom" / f"{row['id']}.dcm").read_bytes()
        radiograph = ingest(data, metadata={"height-cm": "140"})
        source = radiograph.dataset
        kinds.add((source.Modality, source.PhotometricInterpretation))
        meta = radiograph.meta
        # The phantom's true hand box and bone age stand in for the model's output: this test is
        # about the DICOM objects built around them, not about the model.
        x0, y0, x1, y1 = _json.loads(row["hand_boxes"])[0]
        ba = float(row["boneage"])
        output = ModelOutput(bone_age_months=ba, interval_months=(ba - 9, ba + 9), sex_used=meta.sex,
                             hand_box=Box(x0, y0, x1, y1, 0.9), model_version="phantom-test")
        interp = interpret(ba, output.interval_months, meta.sex, meta.chronological_age_months)
        height = predict_adult_height(meta.patient_height_cm, ba, meta.chronological_age_months, meta.sex)
        result = AssessmentResult(
            source=f"phantom-{row['id']}.dcm", status=COMPLETED, bone_age_months=ba,
            bone_age_interval_months=[ba - 9, ba + 9], sex=meta.sex, sex_source=meta.sex_source,
            chronological_age_months=meta.chronological_age_months, sds=interp.sds,
            sds_interval=list(interp.sds_interval) if interp.sds_interval else None, sds_reason=interp.sds_reason,
            interpretation=interp.flag, interpretation_reason=interp.flag_reason,
            predicted_adult_height_cm=height.cm, adult_height_table=height.table,
            adult_height_reason=height.reason, laterality=meta.laterality, model_version="phantom-test",
            study_instance_uid=meta.study_instance_uid, accession_number=meta.accession_number,
            study_reference=meta.study_reference,
        )
        files = build_reports(radiograph, output, result)
        for name in (REPORT_SC, REPORT_SR):
            path = tmp_path / f"{row['id']}_{name}"
            path.write_bytes(files[name])
            errors, warnings = _dciodvfy(path)
            assert errors == [], f"phantom {row['id']} {name}: {errors}"
            assert all("99BONEAGE" in w for w in warnings), f"phantom {row['id']} {name}: {warnings}"
            ds = pydicom.dcmread(path)
            assert ds.StudyInstanceUID == source.StudyInstanceUID
            assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert len(kinds) >= 2   # more than one modality / photometric combination was exercised


def test_source_without_type2_patient_and_study_attributes_still_gives_valid_dicom(rng, tmp_path):
    radiograph, output, result = make_case(rng)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "AccessionNumber", "StudyID", "ReferringPhysicianName"):
        delattr(radiograph.dataset, keyword)
    files = build_reports(radiograph, output, result)
    assert "PatientID" not in radiograph.dataset      # the caller's dataset is not modified
    for name in (REPORT_SC, REPORT_SR):
        path = tmp_path / name
        path.write_bytes(files[name])
        errors, _ = _dciodvfy(path)
        assert errors == [], f"{name}: {errors}"
        assert pydicom.dcmread(path).PatientID == ""


def test_source_without_sop_class_gives_png_only_and_says_why(rng, caplog):
    radiograph, output, result = make_case(rng)
    del radiograph.dataset.SOPClassUID
    files = build_reports(radiograph, output, result)
    assert set(files) == {REPORT_PNG}
    assert result.warnings == ["DICOM results (SC/SR) not produced: UnusableSource"]
    assert "DICOM results not produced" in caplog.text
