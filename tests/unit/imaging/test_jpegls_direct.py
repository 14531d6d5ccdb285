"""The direct CharLS route (``boneage.imaging.jpegls``) returns exactly what pydicom's pyjpegls
route returns, and steps aside (None) wherever it cannot be sure of that."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.data import get_testdata_files
from pydicom.pixels import get_decoder

from boneage.imaging import Limits, dicom, ingest, jpegls, testing
from boneage.imaging.dicom import decode as dicom_decode

from .corpus import source


def test_charls_is_reachable_through_pyjpegls():
    # pyjpegls is a dependency; if a release stops exporting CharLS's C API, ingest still works
    # (pydicom's route) but JPEG-LS gets ~15 ms slower: fail here so that is noticed.
    assert jpegls.available()


def _pydicom(ds: pydicom.Dataset) -> np.ndarray:
    return get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, index=0, decoding_plugin="pyjpegls")[0]


def _dataset(data: bytes) -> pydicom.Dataset:
    return dicom.parse(data, Limits())


CASES = {
    "lossless_8bit": lambda: testing.dicom_bytes(source(8).astype(np.uint8), uid.JPEGLSLossless, bits_stored=8),
    "lossless_12bit": lambda: testing.dicom_bytes(source(12), uid.JPEGLSLossless, bits_stored=12),
    "lossless_16bit": lambda: testing.dicom_bytes(source(16), uid.JPEGLSLossless, bits_stored=16),
    "near_lossless_12bit": lambda: testing.dicom_bytes(source(12), uid.JPEGLSNearLossless, bits_stored=12, near=2),
    "odd_size": lambda: testing.dicom_bytes(source(12, rows=37, columns=53), uid.JPEGLSLossless, bits_stored=12),
}


@pytest.mark.parametrize("name", CASES)
def test_direct_jpeg_ls_decode_equals_pydicom(name):
    ds = _dataset(CASES[name]())
    direct = dicom_decode.jpeg_ls_direct(ds)
    assert direct is not None
    expected = _pydicom(ds)
    assert direct.dtype == expected.dtype and direct.shape == expected.shape
    np.testing.assert_array_equal(direct, expected)


def test_pydicom_jpeg_ls_test_files_decode_the_same_either_way():
    files = sorted(p for p in get_testdata_files() if os.path.isfile(p))
    compared = 0
    for path in files:
        try:
            ds = pydicom.dcmread(path)
        except Exception:
            continue                                         # not a Part 10 file
        if ds.file_meta.get("TransferSyntaxUID") not in dicom.JPEG_LS_SYNTAXES:
            continue
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            continue
        direct = dicom_decode.jpeg_ls_direct(ds)
        if direct is None:
            continue
        np.testing.assert_array_equal(direct, _pydicom(ds), err_msg=os.path.basename(path))
        compared += 1
    assert compared >= 2


def test_signed_jpeg_ls_is_left_to_pydicom():
    src = source(12).astype(np.int16) - 2048
    ds = _dataset(testing.dicom_bytes(src, uid.JPEGLSLossless, bits_stored=12, signed=True))
    assert dicom_decode.jpeg_ls_direct(ds) is None
    r = ingest(testing.dicom_bytes(src, uid.JPEGLSLossless, bits_stored=12, signed=True),
               target_long_side=None)
    assert r.pixels.shape == src.shape


def test_a_stream_whose_size_differs_from_the_request_is_not_decoded_directly():
    frame = dicom_decode.first_frame(_dataset(CASES["lossless_12bit"]()))
    rows, columns = source(12).shape
    assert jpegls.decode(frame, rows, columns, 16) is not None
    assert jpegls.decode(frame, rows - 1, columns, 16) is None
    assert jpegls.decode(frame, rows, columns + 1, 16) is None
    assert jpegls.decode(frame, rows, columns, 8) is None        # 12-bit samples do not fit 8 bits


def test_a_corrupt_scan_is_not_decoded_directly():
    frame = bytearray(dicom_decode.first_frame(_dataset(CASES["lossless_12bit"]())))
    rows, columns = source(12).shape
    scan = frame.find(b"\xff\xda")
    frame[scan + 20: scan + 60] = b"\xff" * 40
    assert jpegls.decode(bytes(frame), rows, columns, 16) is None


def test_ingest_takes_the_direct_route_for_grey_unsigned_jpeg_ls(monkeypatch):
    calls = []
    real = jpegls.decode
    monkeypatch.setattr(jpegls, "decode", lambda *a: calls.append(a) or real(*a))
    src = source(12)
    r = ingest(testing.dicom_bytes(src, uid.JPEGLSLossless, bits_stored=12), target_long_side=None)
    assert calls and r.pixels.shape == src.shape

