"""``boneage inspect``: one JSON object per file, typed rejections, PNG dumps, no tracebacks."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from pydicom import uid

from boneage.cli import main
from boneage.imaging import testing

from .corpus import source

REQUIRED = ("source", "status", "reason", "message", "rows", "columns", "transfer_syntax", "photometric",
            "modality", "sex", "chronological_age_months", "laterality")


def _run(capsys, *argv: str) -> tuple[int, list[dict]]:
    code = main(["inspect", *argv])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def test_inspect_json_prints_one_object_per_file_with_the_promised_fields(tmp_path, capsys):
    good = tmp_path / "hand.dcm"
    good.write_bytes(testing.dicom_bytes(source(12), uid.JPEG2000Lossless, bits_stored=12,
                                         tags={"PatientSex": "F", "PatientBirthDate": "20150101",
                                               "StudyDate": "20250101", "ImageLaterality": "L"}))
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    code, rows = _run(capsys, str(good), str(bad), "--json")
    assert code == 0 and len(rows) == 2
    for row in rows:
        assert set(REQUIRED) <= set(row)
    ok, rejected = rows
    assert ok["status"] == "ok" and ok["reason"] is None and ok["source"] == str(good)
    assert (ok["rows"], ok["columns"], ok["transfer_syntax"], ok["photometric"]) == (96, 80, uid.JPEG2000Lossless,
                                                                                    "MONOCHROME2")
    assert (ok["modality"], ok["sex"], ok["laterality"]) == ("DX", "F", "L")
    assert 119 < ok["chronological_age_months"] < 121
    assert rejected["status"] == "rejected" and rejected["reason"] == "not_an_image" and rejected["message"]


def test_inspect_flags_override_and_missing_files_exit_2(tmp_path, capsys):
    png = tmp_path / "hand.png"
    png.write_bytes(testing.png_bytes(source(8).astype(np.uint8)))
    code, rows = _run(capsys, str(png), str(tmp_path / "missing.dcm"), "--json", "--sex", "M", "--age-months", "100")
    assert code == 2
    assert rows[0]["sex"] == "M" and rows[0]["sex_source"] == "cli" and rows[0]["chronological_age_months"] == 100.0
    assert rows[1]["status"] == "rejected" and rows[1]["reason"] == "unreadable_file"


def test_inspect_dump_png_writes_a_viewable_8bit_image(tmp_path, capsys):
    src = tmp_path / "hand.dcm"
    src.write_bytes(testing.dicom_bytes(source(12, rows=400, columns=300), bits_stored=12))
    out = tmp_path / "dump"
    code, rows = _run(capsys, str(src), "--json", "--dump-png", str(out), "--target-long-side", "200")
    assert code == 0
    im = Image.open(rows[0]["dump_png"])
    assert im.mode == "L" and im.size == (150, 200)
    assert np.asarray(im).std() > 10


def test_inspect_bad_metadata_flag_is_a_rejection_line_not_a_traceback(tmp_path, capsys):
    png = tmp_path / "hand.png"
    png.write_bytes(testing.png_bytes(source(8).astype(np.uint8)))
    code, rows = _run(capsys, str(png), "--json", "--sex", "banana")
    assert code == 0 and rows[0]["reason"] == "invalid_metadata"


def test_inspect_human_output_names_the_reason(tmp_path, capsys):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"\x00" * 10)
    assert main(["inspect", str(bad)]) == 0
    assert "rejected not_an_image" in capsys.readouterr().out
