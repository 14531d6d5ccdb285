"""The Secondary Capture's BurnedInAnnotation tells the truth about its pixels: the report page
prints the study reference, so the flag is YES; NO only for a page without a reference made from
a source whose own pixels carry no text."""

from __future__ import annotations

import io
import shutil
import subprocess

import pydicom
import pytest

from boneage.report import REPORT_SC, build_reports
from boneage.report.png import report_lines

from .cases import ACCESSION, make_case


def _sc(radiograph, output, result) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(build_reports(radiograph, output, result)[REPORT_SC]))


def test_sc_that_shows_the_study_reference_says_burned_in_annotation_yes(rng):
    radiograph, output, result = make_case(rng)
    radiograph.dataset.BurnedInAnnotation = "NO"         # the radiograph itself carries no text
    assert f"Study reference: {ACCESSION}" in report_lines(result)      # what the page draws
    assert _sc(radiograph, output, result).BurnedInAnnotation == "YES"


def test_sc_without_a_reference_from_a_clean_source_says_no(rng):
    radiograph, output, result = make_case(rng)
    radiograph.dataset.BurnedInAnnotation = "NO"
    result.accession_number = result.study_reference = None
    assert "Study reference: n/a" in report_lines(result)
    assert _sc(radiograph, output, result).BurnedInAnnotation == "NO"


def test_sc_from_a_source_that_may_carry_text_says_yes(rng):
    radiograph, output, result = make_case(rng)
    result.accession_number = result.study_reference = None
    assert "BurnedInAnnotation" not in radiograph.dataset                 # unknown: assume it may
    assert _sc(radiograph, output, result).BurnedInAnnotation == "YES"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_dciodvfy_accepts_the_sc_with_burned_in_annotation_yes(rng, tmp_path):
    radiograph, output, result = make_case(rng)
    path = tmp_path / "sc.dcm"
    path.write_bytes(build_reports(radiograph, output, result)[REPORT_SC])
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
    assert errors == [] and pydicom.dcmread(path).BurnedInAnnotation == "YES"
