"""generate_dataset and ``boneage phantom``: RSNA layout, byte-for-byte reproducibility, DICOM content."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from boneage.cli import main
from boneage.errors import Rejection
from boneage.phantom import generate_dataset
from boneage.phantom.dataset import COLUMNS

SIZE = 128
ALL_KINDS = {"left": 1, "right": 1, "two_hands": 1, "non_hand": 1, "adult": 1}


@pytest.fixture(scope="module")
def phantom_set(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("set") / "a", 20, seed=7, fmt="both", size=SIZE, mix=ALL_KINDS)


def rows(root: Path) -> list[dict[str, str]]:
    with (root / "labels.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_labels_csv_is_rsna_layout_readable_by_csv(phantom_set):
    table = rows(phantom_set)
    assert len(table) == 20
    with (phantom_set / "labels.csv").open() as fh:
        header = fh.readline().strip().split(",")
    assert header[:3] == ["id", "boneage", "male"] and header == list(COLUMNS)
    for row in table:
        assert int(row["id"]) >= 1
        assert float(row["boneage"]) > 0
        assert row["male"] in ("True", "False")
        assert (row["sex"] == "M") == (row["male"] == "True")
        boxes = json.loads(row["hand_boxes"])
        assert len(boxes) == int(row["n_hands"])
        image = Image.open(phantom_set / "images" / f"{row['id']}.png")
        assert image.mode == "L" and image.size == (SIZE, SIZE)
    assert {r["kind"] for r in table} == set(ALL_KINDS)


def test_same_seed_writes_identical_bytes(tmp_path, phantom_set):
    again = generate_dataset(tmp_path / "b", 20, seed=7, fmt="both", size=SIZE, mix=ALL_KINDS)
    assert digests(again) == digests(phantom_set)


def test_another_seed_writes_another_set(tmp_path, phantom_set):
    other = generate_dataset(tmp_path / "c", 20, seed=8, fmt="png", size=SIZE, mix=ALL_KINDS)
    assert rows(other) != rows(phantom_set)


def test_a_longer_set_extends_a_shorter_one(tmp_path, phantom_set):
    short = generate_dataset(tmp_path / "d", 5, seed=7, fmt="png", size=SIZE, mix=ALL_KINDS)
    assert rows(short) == rows(phantom_set)[:5]


def test_dicom_carries_sex_dates_spacing_and_the_png_image(phantom_set):
    photometrics = set()
    for row in rows(phantom_set):
        ds = pydicom.dcmread(phantom_set / "dicom" / f"{row['id']}.dcm")
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.Modality in ("CR", "DX") and ds.BitsStored == 12
        assert ds.PatientSex == row["sex"]
        assert str(ds.PatientName).startswith("PHANTOM^") and ds.PatientID.startswith("PH-")
        birth = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
        study = dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()
        assert (study - birth).days / (365.25 / 12) == pytest.approx(float(row["chronological_age_months"]), abs=1e-3)
        assert float(ds.PixelSpacing[0]) == pytest.approx(float(row["pixel_spacing_mm"]), rel=1e-4)
        lat = ds.get("ImageLaterality") or ds.get("Laterality")
        if row["kind"] == "right":
            assert lat == "R"
        elif row["kind"] in ("left", "adult"):
            assert lat == "L"
        # Displayed the DICOM way (MONOCHROME1 inverted), it is the PNG's image.
        pixels = ds.pixel_array.astype(np.float64) / 4095.0
        if ds.PhotometricInterpretation == "MONOCHROME1":
            pixels = 1.0 - pixels
        png = np.asarray(Image.open(phantom_set / "images" / f"{row['id']}.png"), dtype=np.float64) / 255.0
        assert np.abs(pixels - png).max() <= 0.5 / 255 + 1e-3
        photometrics.add(ds.PhotometricInterpretation)
        assert len({ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}) == 3
    assert photometrics <= {"MONOCHROME1", "MONOCHROME2"}


def test_dicom_is_read_by_ingest_with_the_labelled_sex_and_age(phantom_set):
    from boneage.imaging import ingest

    for row in rows(phantom_set)[:6]:
        data = (phantom_set / "dicom" / f"{row['id']}.dcm").read_bytes()
        radiograph = ingest(data)
        assert radiograph.meta.sex == row["sex"]
        assert radiograph.meta.chronological_age_months == pytest.approx(float(row["chronological_age_months"]), abs=0.05)
        png = np.asarray(Image.open(phantom_set / "images" / f"{row['id']}.png"), dtype=np.float32) / 255.0
        # Bright bone either way: ingest undoes MONOCHROME1.
        assert np.corrcoef(radiograph.pixels.ravel(), png.ravel())[0, 1] > 0.99


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools (dciodvfy) not installed")
def test_dicom_passes_dciodvfy_without_errors_or_warnings(phantom_set):
    for row in rows(phantom_set):
        out = subprocess.run(["dciodvfy", str(phantom_set / "dicom" / f"{row['id']}.dcm")],
                             capture_output=True, text=True, timeout=60)
        errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith(("Error", "Warning"))]
        assert not errors, errors


def test_bad_requests_are_typed_rejections(tmp_path):
    for kwargs in ({"fmt": "tiff"}, {"mix": {"hand": 1.0}}, {"mix": {"left": 0.0}}, {"size": 8}):
        with pytest.raises(Rejection) as err:
            generate_dataset(tmp_path / "x", 1, seed=0, **{"size": 64, **kwargs})
        assert err.value.reason == "invalid_phantom_request"


def test_cli_prints_one_json_line_per_image_and_a_summary(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["phantom", "--out", str(out), "--count", "4", "--seed", "3", "--size", "96", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == ["image"] * 4 + ["summary"]
    assert lines[-1]["count"] == 4 and sum(lines[-1]["kinds"].values()) == 4
    assert len(rows(out)) == 4 and len(list((out / "images").glob("*.png"))) == 4


def test_cli_rejects_an_unknown_kind_without_a_traceback(tmp_path, capsys):
    code = main(["phantom", "--out", str(tmp_path / "x"), "--count", "1", "--seed", "0", "--mix", "hands=1", "--json"])
    line = json.loads(capsys.readouterr().out.strip())
    assert code == 2 and line["status"] == "rejected" and line["reason"] == "invalid_phantom_request"
