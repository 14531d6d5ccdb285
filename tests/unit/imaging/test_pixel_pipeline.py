"""The grey-level pipeline: bit depths, signedness, Modality LUT -> VOI -> inversion order,
MONOCHROME1/2 equivalence, Presentation LUT Shape, colour to grey, and reduced-size decoding."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset

from boneage.errors import Rejection
from boneage.imaging import Limits, dicom, ingest, pixels, testing
from boneage.imaging.dicom import decode as dicom_decode

from .corpus import COLUMNS, ROWS, exact_window, expected_exact, source


def _ingest(data: bytes, target: int | None = None):
    return ingest(data, target_long_side=target)


@pytest.mark.parametrize("bits", [8, 10, 12, 14, 16])
@pytest.mark.parametrize("ts", [uid.ExplicitVRLittleEndian, uid.JPEG2000Lossless, uid.JPEGLSLossless, uid.RLELossless],
                         ids=lambda t: t.name)
def test_unsigned_bit_depths_decode_exactly(bits, ts):
    src = source(bits)
    arr = src.astype(np.uint8) if bits == 8 else src
    r = _ingest(testing.dicom_bytes(arr, ts, bits_stored=bits, tags=exact_window(bits)))
    assert r.meta.bits_stored == bits
    np.testing.assert_allclose(r.pixels, expected_exact(src, bits), rtol=0, atol=1e-6)


@pytest.mark.parametrize("bits", [12, 16])
@pytest.mark.parametrize("ts", [uid.ExplicitVRLittleEndian, uid.JPEG2000Lossless, uid.RLELossless],
                         ids=lambda t: t.name)
def test_signed_pixels_with_rescale_use_modality_values(bits, ts):
    # Signed stored values s = x - 2^(bits-1); Rescale Intercept puts them back to x.
    src = source(bits)
    signed = (src.astype(np.int32) - 2 ** (bits - 1)).astype(np.int16)
    tags = dict(exact_window(bits), RescaleSlope=1, RescaleIntercept=2 ** (bits - 1), RescaleType="US")
    r = _ingest(testing.dicom_bytes(signed, ts, bits_stored=bits, signed=True, tags=tags))
    np.testing.assert_allclose(r.pixels, expected_exact(src, bits), rtol=0, atol=1e-6)


def test_monochrome1_is_inverted_after_rescale_and_window():
    # Order matters: window(rescale(x)) then 1 - y. Inverting first would window the wrong end.
    src = source(12)
    tags = {"RescaleSlope": 2.0, "RescaleIntercept": -1000.0, "WindowCenter": 3000.0, "WindowWidth": 4000.0,
            "VOILUTFunction": "LINEAR_EXACT"}
    r = _ingest(testing.dicom_bytes(src, photometric="MONOCHROME1", bits_stored=12, tags=tags))
    modality = src * 2.0 - 1000.0
    expected = 1.0 - np.clip((modality - 3000.0) / 4000.0 + 0.5, 0, 1)
    np.testing.assert_allclose(r.pixels, expected, rtol=0, atol=1e-6)


def test_monochrome1_and_monochrome2_twins_normalise_to_the_same_image_without_window():
    src = source(12)
    m2 = _ingest(testing.dicom_bytes(src, bits_stored=12))
    m1 = _ingest(testing.dicom_bytes((4095 - src).astype(np.uint16), photometric="MONOCHROME1", bits_stored=12))
    np.testing.assert_array_equal(m1.pixels, m2.pixels)
    assert 0.0 <= m2.pixels.min() and m2.pixels.max() <= 1.0 and m2.pixels.max() - m2.pixels.min() > 0.9


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_monochrome1_and_monochrome2_twins_match_with_their_windows(function):
    src = source(12)
    c, w = 1900.0, 2500.0
    # The reflected twin's centre: 4095 - c for LINEAR_EXACT/SIGMOID; LINEAR's half-pixel offset
    # (C.11.2.1.2.1 windows around c - 0.5) makes it 4096 - c.
    c1 = 4096.0 - c if function == "LINEAR" else 4095.0 - c
    m2 = _ingest(testing.dicom_bytes(src, bits_stored=12, tags=dict(
        WindowCenter=c, WindowWidth=w, VOILUTFunction=function)))
    m1 = _ingest(testing.dicom_bytes((4095 - src).astype(np.uint16), photometric="MONOCHROME1", bits_stored=12,
                                     tags=dict(WindowCenter=c1, WindowWidth=w, VOILUTFunction=function)))
    np.testing.assert_allclose(m1.pixels, m2.pixels, rtol=0, atol=1e-6)


def test_presentation_lut_shape_inverse_inverts_monochrome2_once():
    src = source(12)
    plain = _ingest(testing.dicom_bytes(src, bits_stored=12, tags=exact_window(12)))
    inverse = _ingest(testing.dicom_bytes(src, bits_stored=12, tags=dict(exact_window(12), PresentationLUTShape="INVERSE")))
    np.testing.assert_allclose(inverse.pixels, 1.0 - plain.pixels, rtol=0, atol=1e-6)


def test_monochrome1_with_presentation_lut_inverse_is_not_inverted_twice():
    # DX (PS3.3 C.8.11.6.1.2): INVERSE is the required companion of MONOCHROME1, one inversion.
    src = source(12)
    reflected = (4095 - src).astype(np.uint16)
    plain = _ingest(testing.dicom_bytes(reflected, photometric="MONOCHROME1", bits_stored=12))
    paired = _ingest(testing.dicom_bytes(reflected, photometric="MONOCHROME1", bits_stored=12,
                                         tags={"PresentationLUTShape": "INVERSE"}))
    np.testing.assert_array_equal(paired.pixels, plain.pixels)


def test_voi_lut_sequence_is_preferred_over_window():
    src = source(12)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    lut = (np.sqrt(np.arange(4096) / 4095.0) * 65535).astype(np.uint16)   # a gamma-like VOI LUT
    item.LUTData = lut.tobytes()
    ds_tags = {"VOILUTSequence": pydicom.Sequence([item]), "WindowCenter": 10, "WindowWidth": 10}
    r = _ingest(testing.dicom_bytes(src, bits_stored=12, tags=ds_tags))
    expected = lut[src] / 65535.0
    np.testing.assert_allclose(r.pixels, expected, rtol=0, atol=1e-6)


def test_rgb_and_ybr_become_bt601_luma():
    rng = np.random.default_rng(3)
    grey = source(8).astype(np.uint8)
    rgb = np.stack([grey, np.roll(grey, 3, axis=1), 255 - grey], axis=-1).astype(np.uint8)
    rgb = np.clip(rgb.astype(int) + rng.integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)
    expected = (rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0
    native = _ingest(testing.dicom_bytes(rgb, photometric="RGB", bits_stored=8))
    np.testing.assert_allclose(native.pixels, expected, atol=1e-6)
    rle = _ingest(testing.dicom_bytes(rgb, uid.RLELossless, photometric="RGB", bits_stored=8))
    np.testing.assert_allclose(rle.pixels, expected, atol=1e-6)
    j2k = _ingest(testing.dicom_bytes(rgb, uid.JPEG2000Lossless, photometric="YBR_RCT", bits_stored=8))
    np.testing.assert_allclose(j2k.pixels, expected, atol=1e-6)
    jpeg = _ingest(testing.dicom_bytes(rgb, uid.JPEGBaseline8Bit, photometric="YBR_FULL_422", bits_stored=8))
    assert testing.psnr(jpeg.pixels, expected) >= 35.0
    lossy = _ingest(testing.dicom_bytes(rgb, uid.JPEG2000, photometric="YBR_ICT", bits_stored=8))
    assert testing.psnr(lossy.pixels, expected) >= 35.0


def test_native_ybr_full_is_converted_before_luma():
    from pydicom.pixels import convert_color_space

    grey = source(8).astype(np.uint8)
    rgb = np.stack([grey, grey // 2 + 60, 255 - grey], axis=-1).astype(np.uint8)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    r = _ingest(testing.dicom_bytes(ybr, photometric="YBR_FULL", bits_stored=8))
    expected = (rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0
    assert np.abs(r.pixels - expected).max() <= 3 / 255     # YBR round trip rounds by a level or two


def test_palette_colour_is_read_through_its_lut():
    idx = (source(8) // 32).astype(np.uint8)          # 8 palette entries
    ramp = (np.arange(256) * 257).astype(np.uint16)
    tags = {"RedPaletteColorLookupTableDescriptor": [256, 0, 16], "GreenPaletteColorLookupTableDescriptor": [256, 0, 16],
            "BluePaletteColorLookupTableDescriptor": [256, 0, 16]}
    data_ds = testing.base_dataset(ROWS, COLUMNS, photometric="PALETTE COLOR", bits_allocated=8, bits_stored=8, tags=tags)
    data_ds.RedPaletteColorLookupTableData = ramp.tobytes()
    data_ds.GreenPaletteColorLookupTableData = ramp.tobytes()
    data_ds.BluePaletteColorLookupTableData = ramp.tobytes()
    testing.encode_pixels(data_ds, idx, uid.ExplicitVRLittleEndian)
    r = _ingest(testing.to_bytes(data_ds))
    np.testing.assert_allclose(r.pixels, idx / 255.0, atol=1e-6)


def test_reduction_caps_long_side_and_records_decode_scale():
    src = source(12, rows=400, columns=300)
    r = _ingest(testing.dicom_bytes(src, bits_stored=12, tags=exact_window(12)), target=100)
    assert r.pixels.shape == (100, 75)
    assert r.meta.decode_scale == pytest.approx(4.0)
    # box averaging of stored values, then the window: compare with a block mean of the source
    block = src.reshape(100, 4, 75, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(r.pixels, expected_exact(block, 12), atol=1 / 4096)


def test_small_images_are_never_enlarged():
    r = _ingest(testing.dicom_bytes(source(12), bits_stored=12), target=1024)
    assert r.pixels.shape == (ROWS, COLUMNS) and r.meta.decode_scale == 1.0


def test_jpeg2000_decodes_only_the_resolution_level_needed():
    src = source(12, rows=1024, columns=800)
    data = testing.dicom_bytes(src, uid.JPEG2000Lossless, bits_stored=12, tags=exact_window(12))
    ds = dicom.parse(data, Limits())
    assert dicom_decode.j2k_reduced(ds, 256).shape == (256, 200)     # resolution level 2 of 5
    assert dicom_decode.j2k_reduced(ds, 300).shape == (512, 400)     # level 2 would undershoot 300
    assert dicom_decode.j2k_reduced(ds, 1024) is None                 # nothing to gain: full decode
    fast = _ingest(data, target=512)
    assert fast.pixels.shape == (512, 400) and fast.meta.decode_scale == pytest.approx(2.0)
    full = _ingest(testing.dicom_bytes(src, bits_stored=12, tags=exact_window(12)), target=512)
    # the 5/3 wavelet low-pass and a 2x2 box average differ at sharp edges; same picture
    assert testing.psnr(fast.pixels, full.pixels) >= 35.0
    # and when no reduction is needed the J2K path is exact
    np.testing.assert_allclose(_ingest(data).pixels, expected_exact(src, 12), rtol=0, atol=1e-6)


def test_jpeg2000_reduced_decode_keeps_stored_value_scale_for_every_precision():
    # Pillow returns a p-bit sample scaled up to its mode's depth; the reduced path must undo it.
    for bits in (9, 12, 16):
        src = source(bits, rows=512, columns=400)
        data = testing.dicom_bytes(src, uid.JPEG2000Lossless, bits_stored=bits, tags=exact_window(bits))
        r = _ingest(data, target=256)
        block = src.reshape(256, 2, 200, 2).mean(axis=(1, 3))
        assert np.abs(r.pixels - expected_exact(block, bits)).mean() < 0.01


def test_flat_image_is_rejected_as_empty():
    flat = np.full((ROWS, COLUMNS), 1000, dtype=np.uint16)
    with pytest.raises(Rejection) as exc:
        _ingest(testing.dicom_bytes(flat, bits_stored=12))
    assert exc.value.reason == "empty_image"


def test_window_that_blacks_out_everything_falls_back_to_percentiles():
    src = source(12)
    r = _ingest(testing.dicom_bytes(src, bits_stored=12, tags={"WindowCenter": 60000, "WindowWidth": 10}))
    assert r.pixels.max() - r.pixels.min() > 0.9
    assert any("window" in w for w in r.meta.warnings)


def test_percentile_window_is_symmetric_under_reversal():
    values = np.arange(100, dtype=np.float64)
    counts = np.random.default_rng(0).integers(0, 50, 100)
    lo, hi = pixels._weighted_range(values, counts)
    rlo, rhi = pixels._weighted_range(99 - values, counts)
    assert (lo, hi) == (99 - rhi, 99 - rlo)


def test_zero_rescale_slope_is_ignored_not_applied():
    src = source(12)
    r = _ingest(testing.dicom_bytes(src, bits_stored=12, tags=dict(exact_window(12), RescaleSlope=0, RescaleIntercept=0)))
    np.testing.assert_allclose(r.pixels, expected_exact(src, 12), rtol=0, atol=1e-6)
    assert any("RescaleSlope" in w for w in r.meta.warnings)


def test_16bit_rgb_with_12_bits_stored_uses_the_full_range():
    grey = source(12)
    rgb = np.stack([grey, grey, grey], axis=-1).astype(np.uint16)
    r = _ingest(testing.dicom_bytes(rgb, photometric="RGB", bits_stored=12))
    np.testing.assert_allclose(r.pixels, grey / 4095.0, atol=1e-5)
