"""The reduction to the working resolution (``pixels.downscale``) and the stored-value table
(``pixels.present``): the numpy implementations give, sample for sample, what the plain
definitions computed here give (a float block mean rounded half up, then Pillow's BOX filter one
axis at a time, horizontal first; the grey chain evaluated pixel by pixel), on small arrays of
every dtype and on a 2500x2048 radiograph-like frame."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from boneage.imaging import pixels, testing

BOX = Image.Resampling.BOX


@pytest.fixture(scope="module")
def radiograph() -> np.ndarray:
    return testing.radiograph_like(np.random.default_rng(2500), 2500, 2048, bits=12)


def reference_block_mean(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape[0] // k * k, a.shape[1] // k * k
    mean = a[:h, :w].reshape(h // k, k, w // k, k).astype(np.float64).mean(axis=(1, 3))
    return np.floor(mean + 0.5).astype(a.dtype)


def reference_downscale(a: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Whole-factor block mean, then Pillow's BOX across (one call per axis pins the order)."""
    if a.shape == (rows, columns):
        return a
    k = min(a.shape[0] // rows, a.shape[1] // columns)
    if k >= 2:
        a = reference_block_mean(a, k)
    if a.shape == (rows, columns):
        return a
    across = Image.fromarray(a).resize((columns, a.shape[0]), BOX)
    return np.asarray(across.resize((columns, rows), BOX))


def test_box_taps_are_pillows_box_weights():
    # Pillow's own impulse responses: resizing an identity image gives every output's weights.
    sizes = [(n, m) for n in range(1, 130) for m in range((n + 1) // 2, n)] + [(1250, 1024), (1024, 839)]
    for size_in, size_out in sizes:
        eye = Image.fromarray(np.eye(size_in, dtype=np.float32))
        weights = np.asarray(eye.resize((size_out, size_in), BOX))
        first, count = pixels.box_taps(size_in, size_out)
        expected = np.zeros((size_in, size_out), np.float32)
        for o in range(size_out):
            expected[first[o]:first[o] + count[o], o] = 1.0 / count[o]
        np.testing.assert_allclose(weights, expected, rtol=0, atol=1e-6, err_msg=f"{size_in}->{size_out}")


@pytest.mark.parametrize(("dtype", "top"), [(np.uint8, 255), (np.uint16, 4095), (np.uint16, 16383),
                                            (np.uint16, 16384), (np.uint16, 65535)],
                         ids=["u8", "u12", "u14", "u14+1", "u16"])
def test_downscale_equals_block_mean_then_pillow_box_on_small_arrays(dtype, top):
    # 16383/16384: the largest value whose 2x2 sums still fit 16 bits, and the first that does not.
    rng = np.random.default_rng(top)
    for rows_in in (17, 31, 64, 95, 250):
        for cols_in in (13, 40, 77, 204):
            a = rng.integers(0, top + 1, (rows_in, cols_in)).astype(dtype)
            for target in (16, 23, 50, 100):
                rows, columns = pixels.target_size(rows_in, cols_in, target)
                got = pixels.downscale(a, rows, columns)
                assert got.dtype == a.dtype and got.shape == (rows, columns)
                np.testing.assert_array_equal(got, reference_downscale(a, rows, columns),
                                              err_msg=f"{a.shape}->{(rows, columns)}")


def test_downscale_of_signed_values_is_the_unsigned_result_shifted_back():
    rng = np.random.default_rng(7)
    a = rng.integers(-2048, 2048, (250, 204)).astype(np.int16)
    shifted = (a.astype(np.int32) + 32768).astype(np.uint16)
    expected = (reference_downscale(shifted, 100, 82).astype(np.int32) - 32768).astype(np.int16)
    np.testing.assert_array_equal(pixels.downscale(a, 100, 82), expected)


def test_downscale_of_a_2500x2048_radiograph_equals_the_reference(radiograph):
    img = radiograph
    rows, columns = pixels.target_size(2500, 2048, 1024)
    assert (rows, columns) == (1024, 839)
    np.testing.assert_array_equal(pixels.downscale(img, rows, columns), reference_downscale(img, rows, columns))
    # 16-bit values take the 32-bit accumulator: same definition
    deep = (img.astype(np.uint32) * 16 + 15).astype(np.uint16)
    np.testing.assert_array_equal(pixels.downscale(deep, 512, 419), reference_downscale(deep, 512, 419))


def reference_present(x: np.ndarray, transform: pixels.GreyTransform) -> np.ndarray:
    """The grey chain pixel by pixel: Modality, then the window (or the 0.5-99.5 % cut of the
    image's modality values, sampled every HIST_STRIDE pixels), scale, clip, invert."""
    v = x.astype(np.float64)
    if transform.modality is not None:
        v = np.asarray(transform.modality(x), dtype=np.float64)
    if transform.window is not None:
        out = transform.window.apply(v)
    else:
        s = np.sort(v[::pixels.HIST_STRIDE, ::pixels.HIST_STRIDE].ravel())
        lo_cut, hi_cut = pixels.PERCENTILE_WINDOW[0] * s.size, (1.0 - pixels.PERCENTILE_WINDOW[1]) * s.size
        lo, hi = s[int(np.floor(lo_cut))], s[s.size - 1 - int(np.floor(hi_cut))]
        out = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
    if transform.invert:
        out = 1.0 - out
    return out.astype(np.float32)


@pytest.mark.parametrize("case", ["percentile", "linear", "sigmoid", "rescale+inverted", "signed"])
def test_present_equals_the_chain_evaluated_pixel_by_pixel(case, radiograph):
    # The table covers stored values up to the image's largest only; the output may not change.
    small = pixels.downscale(radiograph, 1024, 839)
    transform = {
        "percentile": pixels.GreyTransform(),
        "linear": pixels.GreyTransform(window=pixels.Window(1800.0, 2400.0)),
        "sigmoid": pixels.GreyTransform(window=pixels.Window(1800.0, 900.0, "SIGMOID")),
        "rescale+inverted": pixels.GreyTransform(modality=lambda a: a * 2.0 - 1000.0,
                                                 window=pixels.Window(2600.0, 5000.0, "LINEAR_EXACT"),
                                                 invert=True),
        "signed": pixels.GreyTransform(),
    }[case]
    if case == "signed":
        small = (small.astype(np.int32) - 2048).astype(np.int16)
    got = pixels.present(small, transform)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, reference_present(small, transform), rtol=0, atol=1e-6)
