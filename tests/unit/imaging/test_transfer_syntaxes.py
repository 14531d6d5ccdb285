"""Every transfer syntax the issue lists decodes to the source pixels (lossless: exactly; lossy:
PSNR >= 35 dB), through the same ``ingest`` the service calls."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import uid

from boneage.imaging import ingest, testing

from .corpus import exact_window, expected_exact, source

LOSSLESS = [
    uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian,
    uid.DeflatedExplicitVRLittleEndian, uid.RLELossless, uid.JPEGLossless, uid.JPEGLosslessSV1,
    uid.JPEGLSLossless, uid.JPEG2000Lossless, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL,
]
LOSSY_12BIT = [uid.JPEGExtended12Bit, uid.JPEGLSNearLossless, uid.JPEG2000, uid.HTJ2K]


@pytest.mark.parametrize("ts", LOSSLESS, ids=lambda t: t.name)
def test_lossless_transfer_syntax_decodes_exactly(ts):
    src = source(12)
    data = testing.dicom_bytes(src, ts, bits_stored=12, tags=exact_window(12))
    r = ingest(data, target_long_side=None)
    assert r.meta.transfer_syntax == ts
    # one stored level is 1/4096 of the output range: this tolerance only forgives float rounding
    np.testing.assert_allclose(r.pixels, expected_exact(src, 12), rtol=0, atol=1e-6)


@pytest.mark.parametrize("ts", LOSSY_12BIT, ids=lambda t: t.name)
def test_lossy_transfer_syntax_is_within_35_db(ts):
    src = source(12)
    data = testing.dicom_bytes(src, ts, bits_stored=12, tags=exact_window(12))
    r = ingest(data, target_long_side=None)
    assert r.pixels.shape == src.shape
    assert testing.psnr(r.pixels, expected_exact(src, 12)) >= 35.0


def test_jpeg_baseline_8bit_is_within_35_db():
    src = source(8)
    data = testing.dicom_bytes(src.astype(np.uint8), uid.JPEGBaseline8Bit, bits_stored=8, tags=exact_window(8))
    r = ingest(data, target_long_side=None)
    assert testing.psnr(r.pixels, expected_exact(src, 8)) >= 35.0


def test_jpeg_ls_near_lossless_error_stays_within_near():
    src = source(12)
    data = testing.dicom_bytes(src, uid.JPEGLSNearLossless, bits_stored=12, tags=exact_window(12), near=3)
    r = ingest(data, target_long_side=None)
    assert np.abs(r.pixels - expected_exact(src, 12)).max() <= 3 / 4096 + 1e-6


@pytest.mark.parametrize("ts", [uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian])
def test_dataset_without_preamble_or_meta_is_read(ts):
    src = source(12)
    data = testing.dicom_bytes(src, ts, bits_stored=12, tags=exact_window(12), preamble=False)
    assert data[128:132] != b"DICM"
    r = ingest(data, target_long_side=None)
    np.testing.assert_allclose(r.pixels, expected_exact(src, 12), rtol=0, atol=1e-6)


def test_decoded_dataset_is_kept_without_pixel_data():
    data = testing.dicom_bytes(source(12), uid.JPEG2000Lossless, bits_stored=12)
    r = ingest(data)
    assert r.dataset is not None and "PixelData" not in r.dataset
    assert r.dataset.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.2"
