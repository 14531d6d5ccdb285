"""DICOM's JPEG syntaxes through libjpeg-turbo 3 (imagecodecs): lossless frames equal the reference
decoder bit for bit, lossy ones stay within +-3 of it, the decoder is chosen by a table, and a
missing imagecodecs is a typed rejection rather than a slower decoder.

References: dcmtk's ``dcmdjpeg`` (IJG libjpeg 6b, with its 12- and 16-bit builds) on frames that
dcmtk's ``dcmcjpeg`` encoded, and pylibjpeg-libjpeg (Thomas Richter's libjpeg, a dev-only test
reference since it is GPLv3) on frames encoded by imagecodecs and on pydicom's own test files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.data import get_testdata_files
from pydicom.pixels import get_decoder

from boneage.errors import Rejection
from boneage.imaging import Limits, ingest, jpeg, testing
from boneage.imaging.dicom import decode as dicom_decode

DCMTK = shutil.which("dcmcjpeg") is not None and shutil.which("dcmdjpeg") is not None
needs_dcmtk = pytest.mark.skipif(not DCMTK, reason="dcmtk (apt-get install dcmtk) is not on PATH")
LIBJPEG_REFERENCE = "pylibjpeg" in get_decoder(uid.JPEGLosslessSV1).available_plugins
needs_reference = pytest.mark.skipif(not LIBJPEG_REFERENCE, reason="pylibjpeg-libjpeg (dev extra) is absent")
# Odd sizes on purpose: partial MCUs and restart-free scans ending mid-row.
SIZES = [(37, 53), (257, 129), (2, 3)]


def _ours(ds: pydicom.Dataset) -> np.ndarray:
    return dicom_decode.jpeg_frame(ds, None)


def _reference(ds: pydicom.Dataset) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, index=0, decoding_plugin="pylibjpeg")[0]


def _dcmtk(tmp_path: Path, arr: np.ndarray, bits: int, options: list[str], *,
           signed: bool = False) -> tuple[pydicom.Dataset, np.ndarray]:
    """(the dcmtk-encoded dataset, dcmdjpeg's decode of it)."""
    native, encoded, decoded = tmp_path / "n.dcm", tmp_path / "e.dcm", tmp_path / "d.dcm"
    native.write_bytes(testing.dicom_bytes(arr, bits_stored=bits, signed=signed))
    subprocess.run(["dcmcjpeg", *options, str(native), str(encoded)], check=True, capture_output=True)
    subprocess.run(["dcmdjpeg", str(encoded), str(decoded)], check=True, capture_output=True)
    return pydicom.dcmread(encoded), pydicom.dcmread(decoded).pixel_array


def test_bundled_libjpeg_turbo_is_version_3_or_later():
    assert jpeg.available()
    assert jpeg.libjpeg_turbo_version() >= (3, 0)


def test_every_jpeg_syntax_is_decoded_by_libjpeg_turbo_and_the_table_says_so():
    for ts in (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1):
        assert dicom_decode.decoder_name(ts) == "libjpeg-turbo"
    assert dicom_decode.decoder_name(uid.JPEGLSLossless) == "charls"
    assert dicom_decode.decoder_name(uid.JPEG2000Lossless) == "openjpeg"
    assert dicom_decode.decoder_name(uid.RLELossless) == "rle"
    assert dicom_decode.decoder_name(uid.ExplicitVRLittleEndian) == "pydicom"


def test_the_jpeg_route_never_reaches_pydicoms_plugins(monkeypatch):
    # If the explicit route were skipped, pydicom's plugins would decode it (and this would fail).
    def no_plugins(ds):
        raise AssertionError("pydicom's plugins were asked to decode a T.81 JPEG frame")
    monkeypatch.setattr(dicom_decode, "_decode_frame", no_plugins)
    img = testing.radiograph_like(np.random.default_rng(1), 64, 48, bits=12)
    r = ingest(testing.dicom_bytes(img, uid.JPEGLosslessSV1, bits_stored=12), target_long_side=None)
    assert r.pixels.shape == (64, 48)


@pytest.mark.parametrize("ts", [uid.JPEGLosslessSV1, uid.JPEGExtended12Bit, uid.JPEGBaseline8Bit])
def test_without_imagecodecs_jpeg_is_a_typed_rejection_not_a_slower_decoder(monkeypatch, ts):
    bits = 8 if ts == uid.JPEGBaseline8Bit else 12
    img = testing.radiograph_like(np.random.default_rng(2), 64, 48, bits=bits)
    data = testing.dicom_bytes(img.astype(np.uint8) if bits == 8 else img, ts, bits_stored=bits)
    monkeypatch.setattr(jpeg, "imagecodecs", None)     # as if the wheel were not installed
    with pytest.raises(Rejection) as info:
        ingest(data, limits=Limits(), target_long_side=None)
    assert info.value.reason == "unsupported_transfer_syntax"
    assert "imagecodecs" in info.value.message


@pytest.mark.parametrize("bits", [2, 8, 12, 15, 16])
@pytest.mark.parametrize("rows,columns", SIZES)
def test_imagecodecs_encoded_lossless_equals_the_source_and_the_reference(bits, rows, columns):
    img = testing.radiograph_like(np.random.default_rng(bits), rows, columns, bits=max(bits, 8)) >> max(0, 8 - bits)
    img = img.astype(np.uint8 if bits <= 8 else np.uint16)
    ds = pydicom.dcmread(_as_file(testing.dicom_bytes(img, uid.JPEGLosslessSV1, bits_stored=bits)))
    ours = _ours(ds)
    assert ours.dtype == img.dtype and np.array_equal(ours, img)
    if LIBJPEG_REFERENCE and bits >= 2:
        assert np.array_equal(ours, _reference(ds))


@needs_dcmtk
@pytest.mark.parametrize("bits", [8, 12, 16])
@pytest.mark.parametrize("options", [["+e1"], ["+el", "+sv", "7"], ["+el", "+sv", "4"]],
                         ids=["sv1", "process14-sv7", "process14-sv4"])
@pytest.mark.parametrize("rows,columns", SIZES[:2])
def test_dcmtk_encoded_lossless_equals_dcmdjpeg_bit_for_bit(tmp_path, bits, options, rows, columns):
    img = testing.radiograph_like(np.random.default_rng(bits + rows), rows, columns, bits=bits)
    img = img.astype(np.uint8) if bits == 8 else img
    ds, reference = _dcmtk(tmp_path, img, bits, options)
    assert ds.file_meta.TransferSyntaxUID in (uid.JPEGLosslessSV1, uid.JPEGLossless)
    ours = _ours(ds)
    assert np.array_equal(ours, reference) and np.array_equal(ours, img)


@needs_dcmtk
@pytest.mark.parametrize("bits", [12, 16])
def test_dcmtk_encoded_signed_lossless_is_sign_extended_like_dcmdjpeg(tmp_path, bits):
    img = testing.radiograph_like(np.random.default_rng(7), 37, 53, bits=bits)
    img = (img.astype(np.int32) - (1 << (bits - 1))).astype(np.int16)
    ds, reference = _dcmtk(tmp_path, img, bits, ["+e1"], signed=True)
    ours = _ours(ds)
    assert ours.dtype == np.int16 and np.array_equal(ours, reference) and np.array_equal(ours, img)


@needs_dcmtk
@pytest.mark.parametrize("bits,options", [(12, ["+ee"]), (8, ["+eb"]), (8, ["+ee"])])
@pytest.mark.parametrize("rows,columns", SIZES[:2])
def test_dcmtk_encoded_lossy_is_within_3_of_dcmdjpeg(tmp_path, bits, options, rows, columns):
    img = testing.radiograph_like(np.random.default_rng(bits), rows, columns, bits=bits)
    img = img.astype(np.uint8) if bits == 8 else img
    ds, reference = _dcmtk(tmp_path, img, bits, options)
    ours = _ours(ds)
    assert ours.shape == reference.shape
    assert np.abs(ours.astype(np.int32) - reference.astype(np.int32)).max() <= 3


@needs_reference
def test_pydicoms_jpeg_test_files_match_the_reference_decoder():
    compared = 0
    for path in sorted(p for p in get_testdata_files() if os.path.isfile(p)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
            except Exception:      # pydicom's deliberately broken files are test_pydicom_testdata's
                continue
        if ds.file_meta.get("TransferSyntaxUID") not in dicom_decode.JPEG_T81_SYNTAXES or "PixelData" not in ds:
            continue
        try:
            reference = _reference(ds)
        except RuntimeError:        # JPEG-lossy.dcm: the reference itself refuses it
            continue
        ours = _ours(ds)
        tolerance = 0 if ds.file_meta.TransferSyntaxUID in dicom_decode.JPEG_LOSSLESS_SYNTAXES else 3
        assert ours.shape == reference.shape, path
        assert np.abs(ours.astype(np.int32) - reference.astype(np.int32)).max() <= tolerance, path
        compared += 1
    assert compared >= 15


def test_grey_8bit_baseline_is_dct_scaled_towards_the_target():
    img = testing.radiograph_like(np.random.default_rng(5), 800, 640, bits=8).astype(np.uint8)
    ds = pydicom.dcmread(_as_file(testing.dicom_bytes(img, uid.JPEGBaseline8Bit, bits_stored=8)))
    scaled = dicom_decode.jpeg_frame(ds, 200)
    assert scaled.shape == (200, 160)            # 1/4: the coarsest scale that still covers 200
    full = dicom_decode.jpeg_frame(ds, None)
    block = full.reshape(200, 4, 160, 4).mean(axis=(1, 3))
    assert np.abs(scaled.astype(np.float64) - block).mean() < 2.0


def test_scale_denominator_never_goes_below_the_target():
    assert jpeg.scale_for(2500, 2048, 1024) == 2
    assert jpeg.scale_for(2500, 2048, 512) == 4
    assert jpeg.scale_for(2500, 2048, 300) == 8
    assert jpeg.scale_for(2500, 2048, None) == 1
    assert jpeg.scale_for(1000, 800, 1024) == 1


def _as_file(data: bytes):
    import io
    return io.BytesIO(data)
