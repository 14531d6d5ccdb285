"""PNG (8/16-bit, grey, RGB, palette) and JPEG ingest."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from boneage.errors import Rejection
from boneage.imaging import ingest, testing

from .corpus import source


def _ingest(data: bytes, target: int | None = None):
    return ingest(data, target_long_side=target)


def test_png_8bit_grey_is_taken_as_displayed():
    src = source(8).astype(np.uint8)
    r = _ingest(testing.png_bytes(src))
    np.testing.assert_allclose(r.pixels, src / 255.0, rtol=0, atol=1e-6)
    assert (r.meta.source_format, r.meta.bits_stored, r.meta.photometric) == ("png", 8, "L")
    assert r.dataset is None


def test_png_16bit_keeps_all_levels_and_gets_the_percentile_window():
    src = source(12)                                     # 12-bit values in a 16-bit PNG
    r = _ingest(testing.png_bytes(src))
    assert r.meta.bits_stored == 16
    # monotone in the source, full range used: the window is a linear stretch between percentiles
    order = np.argsort(src, axis=None)
    assert np.all(np.diff(r.pixels.ravel()[order]) >= 0)
    assert r.pixels.min() == 0.0 and r.pixels.max() == 1.0
    # and it matches the same values in a DICOM without VOI (same rule for both)
    d = ingest(testing.dicom_bytes(src, bits_stored=16), target_long_side=None)
    np.testing.assert_array_equal(r.pixels, d.pixels)


def test_png_rgb_and_palette_become_luma():
    src = source(8).astype(np.uint8)
    rgb = np.stack([src, src, src], axis=-1)
    np.testing.assert_allclose(_ingest(testing.png_bytes(rgb)).pixels, src / 255.0, atol=1 / 255)
    buf = io.BytesIO()
    Image.fromarray(src).convert("P").save(buf, format="PNG")
    assert testing.psnr(_ingest(buf.getvalue()).pixels, src / 255.0) >= 35.0


def test_jpeg_grey_and_colour_are_within_35_db():
    src = source(8).astype(np.uint8)
    assert testing.psnr(_ingest(testing.jpeg_bytes(src)).pixels, src / 255.0) >= 35.0
    rgb = np.stack([src, src, src], axis=-1)
    r = _ingest(testing.jpeg_bytes(rgb))
    assert r.meta.source_format == "jpeg" and testing.psnr(r.pixels, src / 255.0) >= 35.0


def test_large_jpeg_is_decoded_at_a_reduced_dct_scale():
    src = source(8, rows=1200, columns=1000).astype(np.uint8)
    r = _ingest(testing.jpeg_bytes(src), target=300)
    assert r.pixels.shape == (300, 250) and r.meta.decode_scale == pytest.approx(4.0)
    small = np.asarray(Image.fromarray(src).resize((250, 300), Image.Resampling.BOX)) / 255.0
    assert testing.psnr(r.pixels, small) >= 30.0


def test_exif_orientation_is_applied():
    src = source(8, rows=96, columns=64).astype(np.uint8)
    im = Image.fromarray(src)
    exif = im.getexif()
    exif[0x0112] = 6                                   # rotate 90 CW to display
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95, exif=exif)
    r = _ingest(buf.getvalue())
    assert r.pixels.shape == (64, 96)


def test_truncated_png_is_corrupt():
    data = testing.png_bytes(source(8).astype(np.uint8))
    with pytest.raises(Rejection) as exc:
        _ingest(data[: len(data) // 2])
    assert exc.value.reason == "corrupt_pixel_data"


def test_uniform_png_is_an_empty_image():
    with pytest.raises(Rejection) as exc:
        _ingest(testing.png_bytes(np.full((64, 64), 7, np.uint8)))
    assert exc.value.reason == "empty_image"


def test_other_pillow_formats_are_not_accepted():
    buf = io.BytesIO()
    Image.fromarray(source(8).astype(np.uint8)).save(buf, format="BMP")
    with pytest.raises(Rejection) as exc:
        _ingest(buf.getvalue())
    assert exc.value.reason == "not_an_image"


def test_same_picture_normalises_the_same_in_png_and_dicom():
    src8 = source(8).astype(np.uint8)
    png8 = _ingest(testing.png_bytes(src8)).pixels
    dcm8 = ingest(testing.dicom_bytes(src8, bits_stored=8, modality="OT"), target_long_side=None).pixels
    np.testing.assert_array_equal(png8, dcm8)
    m1 = ingest(testing.dicom_bytes((255 - src8).astype(np.uint8), photometric="MONOCHROME1", bits_stored=8),
                target_long_side=None).pixels
    np.testing.assert_allclose(m1, png8, rtol=0, atol=1e-6)
