"""Patient identity goes back to PACS inside the DICOM patient module and nowhere else.

A source DICOM with a known (synthetic) patient name, ID and birth date goes through the report
builder and the notification composer (and, when the imaging and model parts are installed, the
whole ``AssessmentService``); none of the identifiers may appear in the result record, the
notification, the PNG, file names or logs. The SC and SR must carry them in their patient module only.
"""

from __future__ import annotations

import io
import json
import logging
import zlib

import pydicom
import pytest
from PIL import Image

from boneage.notification import compose
from boneage.report import REPORT_PNG, REPORT_SC, REPORT_SR, build_reports

from .cases import BIRTH_DATE, PATIENT_ID, PATIENT_NAME, make_case, source_dataset

B = BIRTH_DATE
FORBIDDEN = [
    "Zzyzxa", "Quentinella", PATIENT_ID, PATIENT_ID.split("-")[1],
    B, f"{B[:4]}-{B[4:6]}-{B[6:]}", f"{B[6:]}/{B[4:6]}/{B[:4]}", f"{B[:4]}.{B[4:6]}.{B[6:]}",
]
PATIENT_MODULE = ("PatientName", "PatientID", "PatientBirthDate")


def _leaks(blob: str | bytes) -> list[str]:
    text = blob.decode("latin-1") if isinstance(blob, bytes) else blob
    return [f for f in FORBIDDEN if f.lower() in text.lower()]


def _png_text(png: bytes) -> str:
    """Every text and compressed-text chunk of the PNG, decoded."""
    img = Image.open(io.BytesIO(png))
    img.load()
    raw = [f"{k}={v}" for k, v in img.text.items()]
    pos = 8
    while pos < len(png):   # also zTXt/iTXt payloads Pillow would not surface under .text
        length = int.from_bytes(png[pos:pos + 4], "big")
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        if kind == b"zTXt":
            raw.append(zlib.decompress(data.split(b"\0", 1)[1][1:]).decode("latin-1"))
        pos += 12 + length
    return "\n".join(raw)


def _without_patient_module(ds: pydicom.Dataset) -> bytes:
    for keyword in PATIENT_MODULE:
        assert keyword in ds, f"{keyword} missing from the DICOM result"
        delattr(ds, keyword)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _assert_outputs_clean(result, files, logs: str) -> None:
    assert _leaks(json.dumps(result.as_dict())) == []
    note = compose(result, "https://results.example/reports/h1/u1/report.png?sig=x", hospital_id="h1")
    for part in (note.subject, note.text, json.dumps(note.json_body), note.sns_message, json.dumps(note.attributes)):
        assert _leaks(part) == []
    assert _leaks(" ".join(files)) == []                 # file names end up in object keys
    assert _leaks(_png_text(files[REPORT_PNG])) == []
    assert _leaks(logs) == []
    for name in (REPORT_SC, REPORT_SR):
        ds = pydicom.dcmread(io.BytesIO(files[name]))
        assert str(ds.PatientName) == PATIENT_NAME and ds.PatientID == PATIENT_ID and ds.PatientBirthDate == B
        assert _leaks(_without_patient_module(ds)) == [], f"{name} repeats patient identity outside the patient module"


def test_reports_and_notification_carry_no_patient_identity(rng, caplog):
    caplog.set_level(logging.DEBUG)
    radiograph, output, result = make_case(rng)
    files = build_reports(radiograph, output, result)
    result.report_files = sorted(files)
    assert _leaks(repr(radiograph.meta.as_dict())) == []
    _assert_outputs_clean(result, files, caplog.text)


def test_whole_pipeline_from_dicom_bytes_carries_no_patient_identity(rng, caplog):
    imaging = pytest.importorskip("boneage.imaging")
    if not hasattr(imaging, "ingest"):
        pytest.skip("boneage.imaging.ingest not available yet")
    torch = pytest.importorskip("torch")
    from boneage.model.pipeline import TwoStageAssessor
    from boneage.model.weights import load_checkpoint
    from boneage.service import AssessmentService

    torch.set_num_threads(1)
    trained = True
    try:
        assessor = TwoStageAssessor.from_checkpoint(load_checkpoint())
    except (FileNotFoundError, OSError):
        trained = False
        # Before the demo weights are committed: the same code path with seeded random weights.
        from boneage.model.configs import CONFIGS
        from boneage.model.networks import build_detector, build_regressor

        torch.manual_seed(0)
        cfg = CONFIGS["demo"]
        assessor = TwoStageAssessor(cfg, build_detector(cfg).eval(), build_regressor(cfg).eval(),
                                    "untrained-test", demo=True)
    try:
        from boneage.phantom import render_sample

        image, _ = render_sample(rng, kind="left", bone_age_months=130.0, male=False, size=512, nuisance=False)
    except ImportError:
        image = None     # the synthetic bars from cases.py
    ds = source_dataset(rng, rows=512, cols=400, image=image)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    caplog.set_level(logging.DEBUG)
    service = AssessmentService(assessor)
    result, files = service.assess(buf.getvalue(), source="uploads/h1/u1.dcm", metadata={"height-cm": "140"})
    assert result.status == "completed" or not trained, f"demo weights rejected the phantom: {result.reason}"
    if result.status != "completed":
        # Untrained weights find no hand; the rejection path must be clean too.
        assert files == {}
        assert _leaks(json.dumps(result.as_dict())) == [] and _leaks(caplog.text) == []
        assert _leaks(compose(result, None).sns_message) == []
        return
    assert result.chronological_age_months is not None   # the birth date was used, then dropped
    assert set(files) == {REPORT_PNG, REPORT_SC, REPORT_SR}
    _assert_outputs_clean(result, files, caplog.text)
