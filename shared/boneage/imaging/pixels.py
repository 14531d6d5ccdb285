"""The grey-level pipeline: stored values -> one float32 image in [0, 1] with bright bone.

Order (PS3.3 C.11 and C.7.6.3.1.2): Modality LUT (rescale or LUT sequence) -> VOI LUT or window
-> scale to [0, 1] -> MONOCHROME1 / Presentation LUT Shape INVERSE inversion, last, so it is done
exactly once. Without a VOI in the file, 8-bit values are taken as displayed (value / 255, as for
an 8-bit PNG) and deeper values get the 0.5-99.5 % percentile range of the image's modality values
as their window, which is symmetric: a MONOCHROME1 image and its MONOCHROME2 twin give the same
output.

For 8- and 16-bit stored values the whole chain is evaluated once per possible stored value (a
table up to the image's largest value: 4096 entries for 12-bit data, at most 256 or 65536) and
applied with one gather, which is what keeps a 5-megapixel radiograph in tens of milliseconds.
Downscaling happens *before* the table, on stored values, so every codec (JPEG 2000 decodes
straight to a lower resolution level) is reduced the same way; it is integer block means and
Pillow's BOX taps computed in numpy (``downscale``), ~6 ms from 2500x2048 to 1024x839.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from boneage.errors import Reason, Rejection

PERCENTILE_WINDOW = (0.005, 0.995)
# ITU-R BT.601 luma, the weights Pillow's convert("L") uses, so DICOM RGB and PNG RGB agree.
LUMA = np.array([0.299, 0.587, 0.114])
# Subsample for the percentile histogram: every 4th row and column is plenty for a 0.5 % cut.
HIST_STRIDE = 4


@dataclass
class Window:
    """A VOI window (PS3.3 C.11.2.1.2): centre, width and function, in modality units."""

    center: float
    width: float
    function: str = "LINEAR"     # LINEAR | LINEAR_EXACT | SIGMOID

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Map modality values to [0, 1] (the standard's y_min..y_max taken as 0..1)."""
        c, w = self.center, self.width
        if self.function == "SIGMOID":                                   # C.11.2.1.3.1
            return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
        if self.function == "LINEAR_EXACT":                              # C.11.2.1.3.2
            return np.clip((x - c) / w + 0.5, 0.0, 1.0)
        return np.clip((x - (c - 0.5)) / (w - 1.0) + 0.5, 0.0, 1.0)     # C.11.2.1.2.1

    @property
    def valid(self) -> bool:
        if not (np.isfinite(self.center) and np.isfinite(self.width)):
            return False
        return self.width >= 1.0 if self.function == "LINEAR" else self.width > 0.0


@dataclass
class GreyTransform:
    """Everything between stored values and the output, without the pixels.

    ``modality`` and ``voi_lut`` are callables on numpy arrays (pydicom's LUT functions bound to
    the dataset) or None for identity; ``window`` is used when there is no VOI LUT; ``full_scale``
    (e.g. 255 for an 8-bit PNG) maps values/full_scale to [0, 1] for images that are already
    presentation-ready.
    """

    modality: Callable[[np.ndarray], np.ndarray] | None = None
    voi_lut: Callable[[np.ndarray], np.ndarray] | None = None
    window: Window | None = None
    full_scale: float | None = None
    full_range: bool = False      # scale by the table's own range (VOI LUT output) not percentiles
    invert: bool = False

    def values(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        """Modality then VOI; returns (values, in_unit_range) where the second says whether the
        values are already in [0, 1] (a window was applied)."""
        # pydicom's Modality LUT indexes with the stored (integer) values, so it gets them raw.
        v = np.asarray(self.modality(x) if self.modality is not None else x, dtype=np.float64)
        if self.voi_lut is not None:
            v = np.asarray(self.voi_lut(v), dtype=np.float64)
            return v, False
        if self.window is not None:
            return self.window.apply(v), True
        if self.full_scale is not None:
            return np.clip(v / self.full_scale, 0.0, 1.0), True
        return v, False


def _weighted_range(values: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """The PERCENTILE_WINDOW cut of ``values`` weighted by ``counts``, symmetric under reversal."""
    order = np.argsort(values, kind="stable")
    v, c = values[order], counts[order]
    keep = c > 0
    v, c = v[keep], c[keep]
    if v.size == 0:
        return 0.0, 0.0
    total = c.sum()
    lo_cut, hi_cut = PERCENTILE_WINDOW[0] * total, (1.0 - PERCENTILE_WINDOW[1]) * total
    below = np.cumsum(c)                     # count <= v[i]
    above = total - below + c                # count >= v[i]
    lo = v[np.argmax(below > lo_cut)]
    hi = v[len(v) - 1 - np.argmax((above > hi_cut)[::-1])]
    if hi <= lo:                             # a mostly-flat image: fall back to the full range
        lo, hi = v[0], v[-1]
    return float(lo), float(hi)


def present(stored: np.ndarray, transform: GreyTransform, warnings: list[str] | None = None) -> np.ndarray:
    """Apply ``transform`` to a 2-D array of stored values; float32 in [0, 1], bright bone.

    A window that maps every pixel of a non-flat image to one level is the file's mistake, not
    an empty image: it is dropped (with a warning) for the percentile window. Raises
    ``Rejection(empty_image)`` when the image itself has a single grey level.
    """
    if stored.ndim != 2 or stored.size == 0:
        raise Rejection(Reason.EMPTY_IMAGE, "the image has no pixels")
    try:
        return _present(stored, transform)
    except Rejection:
        if transform.window is None or _is_flat(stored):
            raise
    if warnings is not None:
        warnings.append("the VOI window maps the whole image to one grey level; ignored")
    return _present(stored, replace(transform, window=None))


def _is_flat(a: np.ndarray) -> bool:
    return bool(a.min() == a.max())


def _present(stored: np.ndarray, transform: GreyTransform) -> np.ndarray:
    if stored.dtype.kind in "ui" and stored.dtype.itemsize <= 2:
        udt = np.uint8 if stored.dtype.itemsize == 1 else np.uint16
        index = stored.view(udt)
        # Only the stored values up to the largest present need a table entry (4096 for a 12-bit
        # image, not 65536: a smaller table to build and a gather that stays in cache), except for
        # a VOI LUT, whose output range over *every* input scales the image (``full_range``).
        n = 1 << (8 * stored.dtype.itemsize) if transform.full_range else int(index.max()) + 1
        domain = np.arange(n, dtype=udt).view(stored.dtype)
        table, unit = transform.values(domain)
        sample = index[::HIST_STRIDE, ::HIST_STRIDE]
        if sample.size < 4096:
            sample = index
        counts = np.bincount(sample.ravel(), minlength=n)
        lo, hi = (float(table.min()), float(table.max())) if transform.full_range else \
            _scale_range(table, counts, unit)
        if transform.full_range and hi <= lo:
            raise Rejection(Reason.EMPTY_IMAGE, "the VOI LUT maps every value to one grey level")
        lut = _to_unit(table, lo, hi, transform.invert)
        # Every index is inside the table by construction, so "clip" never clips; it only skips
        # the bounds check of the default gather (~0.7 ms of ~2 ms on a 1024x839 image).
        return np.take(lut, index, mode="clip")
    # Wider or float stored values (32-bit, Float Pixel Data, RGB luma): evaluate directly.
    values, unit = transform.values(stored)
    if not np.all(np.isfinite(values)):
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    sample = values[::HIST_STRIDE, ::HIST_STRIDE]
    if sample.size < 4096:
        sample = values
    flat = sample.ravel()
    if transform.full_range:
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            raise Rejection(Reason.EMPTY_IMAGE, "the image has a single grey level")
    else:
        lo, hi = _scale_range(flat, np.ones(flat.shape, dtype=np.int64), unit)
    return _to_unit(values, lo, hi, transform.invert)


def _scale_range(values: np.ndarray, counts: np.ndarray, unit: bool) -> tuple[float, float]:
    if unit:
        lo, hi = 0.0, 1.0
        present_values = values[counts > 0]
        if present_values.size and present_values.min() == present_values.max():
            raise Rejection(Reason.EMPTY_IMAGE, "the image has a single grey level")
        return lo, hi
    lo, hi = _weighted_range(values, counts)
    if hi <= lo:
        raise Rejection(Reason.EMPTY_IMAGE, "the image has a single grey level")
    return lo, hi


def _to_unit(values: np.ndarray, lo: float, hi: float, invert: bool) -> np.ndarray:
    out = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    if invert:
        out = 1.0 - out
    return out.astype(np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) -> float64 luma with the BT.601 weights."""
    return rgb[..., :3].astype(np.float64) @ LUMA


def target_size(rows: int, columns: int, target_long_side: int | None) -> tuple[int, int]:
    """(rows, columns) after reducing the long side to ``target_long_side``; never enlarges."""
    long_side = max(rows, columns)
    if target_long_side is None or long_side <= target_long_side:
        return rows, columns
    scale = long_side / target_long_side
    return max(1, round(rows / scale)), max(1, round(columns / scale))


def downscale(arr: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Area-average ``arr`` to (rows, columns), keeping its integer dtype.

    The largest whole factor k is taken first as a k x k block mean (rounded half up), the
    fractional rest with a box filter whose taps and rounding are Pillow's ``BOX`` (``_box``:
    horizontal pass, rounded, then vertical), computed in numpy with gathers instead of Pillow's
    per-pixel double loop; together ~2x faster than the block mean plus Pillow run one axis at a
    time, and equal to that sample for sample (tests/unit/imaging/test_downscale.py); for images
    over twice as tall as wide a single Pillow ``resize`` call can differ by one stored value (see
    ``_box``). Signed values are shifted into unsigned range and back. Float images go to Pillow's
    ``BOX`` directly.
    """
    if arr.shape == (rows, columns):
        return arr
    if arr.dtype == np.int16 or arr.dtype == np.int8:
        udt = np.uint16 if arr.dtype == np.int16 else np.uint8
        flip = udt(1 << (8 * arr.dtype.itemsize - 1))
        out = downscale(arr.view(udt) ^ flip, rows, columns)
        return (out ^ flip).view(arr.dtype)
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        k = min(arr.shape[0] // rows, arr.shape[1] // columns)
        if k >= 2:
            arr = _block_mean(arr, k)
        if arr.shape == (rows, columns):
            return arr
        out = _box(arr, rows, columns)
        if out is not None:
            return out
        return np.asarray(Image.fromarray(arr).resize((columns, rows), Image.Resampling.BOX))
    f = np.ascontiguousarray(arr, dtype=np.float32)
    return np.asarray(Image.fromarray(f).resize((columns, rows), Image.Resampling.BOX))


def _block_mean(arr: np.ndarray, k: int) -> np.ndarray:
    """Mean of k x k blocks, rounded half up, same dtype; the last (size mod k) rows/columns are
    dropped. The sums stay in the input's own 16 bits when its largest value allows (a 12-bit
    image's 2 x 2 sums do), which halves the memory traffic of the one full-resolution pass."""
    h, w = arr.shape[0] // k * k, arr.shape[1] // k * k
    n = k * k
    peak = int(arr.max()) if arr.size else 0
    acc_dtype = np.uint16 if peak * n + n // 2 <= 0xFFFF else np.uint32
    acc = np.add(arr[0:h:k, :w], arr[1:h:k, :w], dtype=acc_dtype)
    for i in range(2, k):
        acc += arr[i:h:k, :w]
    out = np.add(acc[:, 0::k], acc[:, 1::k])
    for j in range(2, k):
        out += acc[:, j::k]
    out += n // 2
    if n & (n - 1) == 0:
        out >>= n.bit_length() - 1
    else:
        out //= n
    return out.astype(arr.dtype, copy=False)


@functools.lru_cache(maxsize=64)
def box_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(first input index, number of inputs) of each output of a ``size_in`` -> ``size_out`` box
    filter, with the taps Pillow's BOX resampling takes (``precompute_coeffs`` in its
    Resample.c): input i belongs to output o when its centre falls in o's footprint, evaluated in
    the same double arithmetic so that ties at footprint edges go the same way."""
    scale = size_in / size_out
    support = 0.5 * scale
    inverse = 1.0 / scale
    out = np.arange(size_out, dtype=np.float64)
    centre = (out + 0.5) * scale
    lo = np.maximum((centre - support + 0.5).astype(np.intp), 0)
    span = np.minimum((centre + support + 0.5).astype(np.intp), size_in) - lo
    x = np.arange(int(math.ceil(support)) * 2 + 1)
    pos = ((x[None, :] + lo[:, None]).astype(np.float64) - centre[:, None] + 0.5) * inverse
    inside = (pos > -0.5) & (pos <= 0.5) & (x[None, :] < span[:, None])
    first, count = lo + np.argmax(inside, axis=1), inside.sum(axis=1)
    first.setflags(write=False)
    count.setflags(write=False)
    return first, count


def _box(arr: np.ndarray, rows: int, columns: int) -> np.ndarray | None:
    """Pillow's BOX reduction of an unsigned integer image by less than 2x on each axis (each
    output then averages one or two inputs per axis), horizontal pass first; None for anything
    else (Pillow does it then).

    An output with two taps a, b is (a + b + 1) >> 1: Pillow computes 0.5 a + 0.5 b in double
    and rounds half up, and its 8-bit fixed-point path rounds the same way. Pillow 13 runs the
    vertical pass first when the height shrinks by more than twice as many pixels as the width;
    for such images the two roundings can differ from its output by one stored value."""
    if not (columns <= arr.shape[1] < 2 * columns and rows <= arr.shape[0] < 2 * rows):
        return None
    out = arr
    for axis, size in ((1, columns), (0, rows)):
        if size != out.shape[axis]:
            first, count = box_taps(out.shape[axis], size)
            if count.min() < 1 or count.max() > 2:
                return None
            out = _box_pass(out, first, count, axis)
    return out


def _box_pass(arr: np.ndarray, first: np.ndarray, count: np.ndarray, axis: int) -> np.ndarray:
    """One pass of ``_box`` along ``axis``. Across rows (axis 0) a gather is a row copy, so the
    second tap is averaged in only where there is one (a minority of rows below 2x); across
    columns numpy's ``take`` is the fast gather and fancy assignment the slow one, so both taps
    are taken whole (a single tap's second is itself: (a + a + 1) >> 1 = a)."""
    if axis == 1:
        return _mean2(np.take(arr, first, axis=1), np.take(arr, first + count - 1, axis=1))
    out = arr[first]
    two = np.flatnonzero(count == 2)
    if two.size:
        out[two] = _mean2(out[two], arr[first[two] + 1])
    return out


def _mean2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a + b + 1) >> 1 elementwise for unsigned integers without overflow
    (``(a | b) - ((a ^ b) >> 1)``); reuses ``a``."""
    c = np.bitwise_xor(a, b)
    c >>= 1
    a |= b
    a -= c
    return a
