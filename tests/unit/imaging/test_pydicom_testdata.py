"""Every file bundled with pydicom yields ``ok`` or a typed rejection: no other exception."""

from __future__ import annotations

import os

from pydicom.data import get_testdata_files

from boneage.errors import Rejection
from boneage.imaging import Limits, ingest
from boneage.imaging.dicom import checks as dicom_checks

from .corpus import AnyModality

FILES = sorted(p for p in get_testdata_files() if os.path.isfile(p))
LIMITS = Limits()


def _outcome(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    try:
        r = ingest(data, limits=LIMITS, target_long_side=256)
    except Rejection as exc:
        assert exc.reason and exc.message
        return exc.reason
    assert r.pixels.ndim == 2 and r.pixels.dtype.name == "float32"
    assert 0.0 <= float(r.pixels.min()) and float(r.pixels.max()) <= 1.0
    return "ok"


def test_pydicom_ships_enough_test_files_offline():
    assert len(FILES) > 100


def test_every_bundled_file_is_ok_or_a_typed_rejection():
    outcomes = {os.path.basename(p): _outcome(p) for p in FILES}
    assert "ok" in outcomes.values()
    assert outcomes["CT_small.dcm"] == "unsupported_modality"


def test_every_bundled_file_decodes_or_is_rejected_when_any_modality_is_accepted(monkeypatch):
    # Pushes the CT/MR/US/NM files through the pixel decoders too.
    monkeypatch.setattr(dicom_checks, "ACCEPTED_MODALITIES", AnyModality())
    outcomes = {os.path.basename(p): _outcome(p) for p in FILES}
    assert sum(v == "ok" for v in outcomes.values()) >= 60
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "MR_small_RLE.dcm", "SC_rgb_jpeg.dcm", "J2K_pixelrep_mismatch.dcm", "JPEGLSNearLossless_16.dcm",
                 "MR_small_bigendian.dcm", "SC_ybr_full_422_uncompressed.dcm", "examples_palette.dcm"):
        assert outcomes[name] == "ok", name
    assert outcomes["MR_truncated.dcm"] == "corrupt_pixel_data"
