"""Image geometry shared by training and inference, so both see pixels prepared the same way.

``letterbox`` fits any image into the detector's square input (aspect kept, zero border);
``square_crop`` cuts the regressor's input around a hand box from the full-resolution image;
``wrist_patch`` cuts the wrist stage's input from the proximal part of the same box, turned with
the hand when ``hand_axis`` finds it tilted ``WINDOW_TURNS_FROM_DEG`` or more; ``upright_left`` turns a
negative back with its ``edge_padding`` kept black. All three crops downscale with
antialiasing: plain bilinear sampling at 4x reduction would alias the fine trabecular and
growth-plate detail the regressor needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Letterbox:
    scale: float          # detector pixels per source pixel
    pad_x: float
    pad_y: float

    def to_source(self, box: np.ndarray | list[float]) -> np.ndarray:
        b = np.asarray(box, dtype=np.float64)
        return (b - [self.pad_x, self.pad_y, self.pad_x, self.pad_y]) / self.scale

    def to_detector(self, box: np.ndarray | list[float]) -> np.ndarray:
        b = np.asarray(box, dtype=np.float64)
        return b * self.scale + [self.pad_x, self.pad_y, self.pad_x, self.pad_y]


def _resize(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if (h, w) == tuple(t.shape[-2:]):
        return t
    down = h < t.shape[-2] or w < t.shape[-1]
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=down)


def letterbox(image: np.ndarray, size: int) -> tuple[torch.Tensor, Letterbox]:
    """[H, W] float image -> ([1, size, size] tensor, geometry), centred with a zero border."""
    h, w = image.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    # np.require copies only when needed (PIL-backed arrays are read-only, which torch warns about).
    t = _resize(torch.from_numpy(np.require(image, np.float32, ["C", "W"]))[None, None], nh, nw)
    out = torch.zeros(1, size, size)
    py, px = (size - nh) // 2, (size - nw) // 2
    out[0, py:py + nh, px:px + nw] = t[0, 0]
    return out, Letterbox(scale=nw / w, pad_x=float(px), pad_y=float(py))


def upright_left(image: np.ndarray, box: np.ndarray | list[float], inverted: bool, mirrored: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The film as the regressor and wrist stage see it, and the hand box on it: bright bone on dark
    (an inverted film turned back, any ``edge_padding`` around it kept black) and a left hand (a right
    one mirrored, its box with it)."""
    prepared = np.asarray(image, dtype=np.float32)
    b = np.asarray(box, dtype=np.float64)
    if inverted:
        padding = edge_padding(prepared)
        prepared = 1.0 - prepared
        prepared[padding] = 0.0
    if mirrored:
        prepared = prepared[:, ::-1]
        w = image.shape[1]
        b = np.array([w - b[2], b[1], w - b[0], b[3]])
    return prepared, b


# Padding is blanked only where it is solid over this many pixels each way (a clipped, noisy border
# reaches the same lowest value in scattered pixels, which are left as they are).
_PADDING_SOLID_PX = 5
# ... and only when it covers at least this fraction of the image. The service's display window clips
# the lowest 0.5 % of pixels to the minimum (``imaging.pixels``), which on a negative is the densest
# bone, possibly a forearm running off the film; padding is far larger (a film turned by 1 degree
# gains about 3.4 %, one shifted by 3 % about 6 %).
PADDING_MIN_FRACTION = 0.02


def _box_count(mask: np.ndarray, radius: int) -> np.ndarray:
    """For each pixel, how many pixels of ``mask`` lie in the square of side 2 * radius + 1 around it."""
    k = 2 * radius + 1
    c = np.zeros((mask.shape[0] + k, mask.shape[1] + k), dtype=np.int32)
    c[1:, 1:] = np.pad(mask.astype(np.int32), radius).cumsum(0).cumsum(1)
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def edge_padding(image: np.ndarray) -> np.ndarray:
    """Where ``image`` holds padding that software added around the film when it rotated or shifted
    it: pixels at the image's lowest value that an edge reaches along their row or column without
    crossing anything else, in areas solid over ``_PADDING_SOLID_PX`` pixels, grown by one pixel to
    take in the interpolated seam, when they cover ``PADDING_MIN_FRACTION`` of the image or more. A
    boolean mask of the image's shape.

    On a negative the padding is black like its anatomy's brightest bone; turned back it would be the
    whitest thing on the film, and beside the wrist it reads as a white border the networks never saw
    there (a rotated negative's corner fill took adult wrists for open growth plates)."""
    img = np.asarray(image)
    low = float(img.min()) + 1e-6
    if not any(bool((edge <= low).any()) for edge in (img[0], img[-1], img[:, 0], img[:, -1])):
        return np.zeros(img.shape, dtype=bool)
    flat = img <= low
    reach = np.zeros_like(flat)
    for axis in (0, 1):
        reach |= np.logical_and.accumulate(flat, axis=axis)
        reach |= np.flip(np.logical_and.accumulate(np.flip(flat, axis), axis=axis), axis)
    r = _PADDING_SOLID_PX // 2
    solid = _box_count(reach, r) == (2 * r + 1) ** 2
    padding = _box_count(solid, r + 1) > 0
    if padding.mean() < PADDING_MIN_FRACTION:
        return np.zeros(img.shape, dtype=bool)
    return padding


def crop_window(box: np.ndarray | list[float], margin: float) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square crop around ``box``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0) * margin
    return (x0 + x1) / 2, (y0 + y1) / 2, side


def _cut(image: np.ndarray, x0: int, y0: int, w: int, h: int) -> torch.Tensor:
    """``image[y0:y0+h, x0:x0+w]`` with zeros where the window leaves the image, as [1, 1, h, w]."""
    ih, iw = image.shape
    canvas = np.zeros((h, w), dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + w, iw), min(y0 + h, ih)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return torch.from_numpy(canvas)[None, None]


# Where the wrist lies in an upright hand box, as fractions of the box height (measured on 2,000
# phantom hands, left and mirrored right, rotated up to 25 degrees: the distal radius, ulna and
# carpals span 0.59-0.97 of the height from the top, and -0.39 to +0.40 of it across the box centre).
WRIST_TOP = 0.57
WRIST_HEIGHT = 0.44


def wrist_window(box: np.ndarray | list[float], size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(left, top, width, height) of the wrist patch in image pixels: the box's proximal 44 %, centred
    across the box, as wide as the output's aspect needs (about 0.84 box heights)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    h = max(y1 - y0, 1.0)
    ph = WRIST_HEIGHT * h
    pw = ph * size[1] / size[0]
    return (x0 + x1) / 2 - pw / 2, y0 + WRIST_TOP * h, pw, ph


# From this tilt on, the wrist window is cut in the hand's own frame (``hand_axis``) instead of the
# image's. The wrist stage was trained on axis-aligned windows (films tilted up to 32 degrees, copies
# turned up to 30 more), and keeps its calibration on hands tilted up to about 30 degrees in all;
# beyond that the axis-aligned window holds a wrist lying askew and off-centre, and adults were missed
# (calibration seed 13101 under the +-25 degree rotation: 97.8 % rejected at 15-30 degrees of total
# tilt, 62 % beyond). Chosen on that seed (197 adults, demo-20261201-de7167ea's wrist stage): adults
# rejected clean / rotated +-25 deg / gamma 1.6 were 99.0 / 82.7 / 95.9 % with axis-aligned windows
# only and 99.0 / 94.9 / 96.4 % turning from 30 degrees; turning every window (96.4 % clean) or from
# 25 degrees (98.0 % clean) cost upright adults (a first implementation's figures).
WINDOW_TURNS_FROM_DEG = 30.0
# Past this tilt the axis no longer says which end is the wrist (a hand lying across the film, where
# the axis's direction is decided by a few degrees): the window stays in the image frame.
WINDOW_TURNS_UP_TO_DEG = 75.0
# The hand's silhouette must be this much longer than wide (ratio of the principal second moments)
# for its axis to be trusted; a rounder mask (a cut-off or overexposed hand) keeps the image frame.
MIN_AXIS_ELONGATION = 1.5
_AXIS_SAMPLES = 160       # the silhouette is measured on about this many pixels along the box's long side


@dataclass(frozen=True)
class HandAxis:
    """The hand's long axis inside its box, and the hand's extent along and across it.

    ``up`` is the unit vector from the wrist towards the fingertips in image coordinates (y down),
    ``tilt_deg`` its angle from the image's vertical (positive: fingertips lean towards +x), and
    ``extent`` the hand's box in the turned frame, ``(left, top, right, bottom)`` relative to
    ``centre`` (across the axis to the right of ``up``, and along it towards the wrist).
    """
    up: tuple[float, float]
    tilt_deg: float
    elongation: float
    centre: tuple[float, float]
    extent: tuple[float, float, float, float]

    def to_image(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Turned-frame coordinates (``a`` across, ``b`` towards the wrist) -> image (x, y)."""
        ux, uy = self.up
        return self.centre[0] - uy * a - ux * b, self.centre[1] + ux * a - uy * b

    def to_axis(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image (x, y) -> turned-frame coordinates (``a`` across, ``b`` towards the wrist)."""
        return _to_axis(self.centre, self.up, x, y)


def _to_axis(centre: tuple[float, float], up: tuple[float, float], x: np.ndarray, y: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    (cx, cy), (ux, uy) = centre, up
    return -(x - cx) * uy + (y - cy) * ux, -(x - cx) * ux - (y - cy) * uy


def _otsu(values: np.ndarray, bins: int = 64) -> float:
    hist, edges = np.histogram(values, bins=bins)
    p = hist / max(int(hist.sum()), 1)
    w = np.cumsum(p)
    mu = np.cumsum(p * np.arange(bins))
    between = (mu[-1] * w - mu) ** 2 / np.maximum(w * (1.0 - w), 1e-12)
    return float(edges[int(np.argmax(between)) + 1])


def hand_axis(image: np.ndarray, box: np.ndarray | list[float]) -> HandAxis | None:
    """The long axis of the hand in ``box`` of an upright-ish image (fingers towards -y), from the
    second moments of its silhouette (Otsu's threshold on the box, bright hand on dark); ``None``
    when the box holds no usable silhouette or one too round to say which way it points."""
    ih, iw = image.shape
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])), iw), min(int(np.ceil(box[3])), ih)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    step = max(1, max(x1 - x0, y1 - y0) // _AXIS_SAMPLES)
    region = np.asarray(image[y0:y1:step, x0:x1:step], dtype=np.float32)
    if float(region.max()) - float(region.min()) < 1e-6:
        return None
    ys, xs = np.nonzero(region > _otsu(region))
    if len(xs) < 50:
        return None
    # The centre of each sampled pixel.
    pts = np.stack([xs * step + x0 + 0.5, ys * step + y0 + 0.5], 1).astype(np.float64)
    d = pts - pts.mean(0)
    values, vectors = np.linalg.eigh(d.T @ d / len(d))
    elongation = float(values[1] / max(values[0], 1e-9))
    if elongation < MIN_AXIS_ELONGATION:
        return None
    ux, uy = (float(v) for v in vectors[:, 1])
    if uy > 0:                              # point it at the fingers (towards the top of the film)
        ux, uy = -ux, -uy
    centre = ((float(box[0]) + float(box[2])) / 2, (float(box[1]) + float(box[3])) / 2)
    a, b = _to_axis(centre, (ux, uy), pts[:, 0], pts[:, 1])
    lo_a, hi_a = np.percentile(a, [0.5, 99.5])
    lo_b, hi_b = np.percentile(b, [0.5, 99.5])
    return HandAxis(up=(ux, uy), tilt_deg=float(np.degrees(np.arctan2(ux, -uy))), elongation=elongation,
                    centre=centre, extent=(float(lo_a), float(lo_b), float(hi_a), float(hi_b)))


def _turned_patch(image: np.ndarray, axis: HandAxis, size: tuple[int, int]) -> tuple[torch.Tensor, float]:
    """``wrist_window`` of the hand's extent in its own frame, sampled from the image (the bounding
    region is cut and downscaled with antialiasing to the patch's scale, then rotated bilinearly), and
    the window's height."""
    left, top, pw, ph = wrist_window(axis.extent, size)
    ca = np.array([left, left + pw, left, left + pw])
    cb = np.array([top, top, top + ph, top + ph])
    xs, ys = axis.to_image(ca, cb)
    sx0, sy0 = int(np.floor(xs.min())), int(np.floor(ys.min()))
    sw, sh = max(int(np.ceil(xs.max())) - sx0, 1), max(int(np.ceil(ys.max())) - sy0, 1)
    f = min(1.0, size[0] / ph)
    th, tw = max(1, round(sh * f)), max(1, round(sw * f))
    region = _resize(_cut(image, sx0, sy0, sw, sh), th, tw)
    a = left + (np.arange(size[1]) + 0.5) * pw / size[1]
    b = top + (np.arange(size[0]) + 0.5) * ph / size[0]
    gx, gy = axis.to_image(a[None, :], b[:, None])
    # Normalised sampling coordinates of the downscaled region (align_corners=False: -1 and 1 are its outer edges).
    grid = np.stack([(gx - sx0) / sw * 2 - 1, (gy - sy0) / sh * 2 - 1], -1)
    return F.grid_sample(region, torch.from_numpy(grid).float()[None], mode="bilinear", padding_mode="zeros",
                         align_corners=False)[0], ph


def wrist_cut(image: np.ndarray, box: np.ndarray | list[float], size: tuple[int, int]
              ) -> tuple[torch.Tensor, float]:
    """The wrist stage's input, [1, H, W], and the height of the window it was cut from in source
    pixels: ``wrist_window`` of an upright (fingers up, left) hand, or of the hand's own frame when it
    is tilted between ``WINDOW_TURNS_FROM_DEG`` and ``WINDOW_TURNS_UP_TO_DEG``."""
    axis = hand_axis(image, box)
    if axis is not None and WINDOW_TURNS_FROM_DEG <= abs(axis.tilt_deg) <= WINDOW_TURNS_UP_TO_DEG:
        return _turned_patch(image, axis, size)
    left, top, pw, ph = wrist_window(box, size)
    t = _cut(image, int(round(left)), int(round(top)), max(int(round(pw)), 1), max(int(round(ph)), 1))
    return _resize(t, size[0], size[1])[0], ph


def wrist_patch(image: np.ndarray, box: np.ndarray | list[float], size: tuple[int, int]) -> torch.Tensor:
    """The wrist stage's input (``wrist_cut`` without the window's height)."""
    return wrist_cut(image, box, size)[0]


def square_crop(image: np.ndarray, box: np.ndarray | list[float], margin: float, size: int) -> torch.Tensor:
    """Square crop of side ``margin`` x longest box side, centred on the box, zero outside; [1, size, size]."""
    cx, cy, side = crop_window(box, margin)
    s = max(int(round(side)), 1)
    t = _cut(image, int(round(cx - side / 2)), int(round(cy - side / 2)), s, s)
    return _resize(t, size, size)[0]
