"""Image geometry shared by training and inference, so both see pixels prepared the same way.

``letterbox`` fits any image into the detector's square input (aspect kept, zero border);
``square_crop`` cuts the regressor's input around a hand box from the full-resolution image;
``wrist_patch`` cuts the wrist stage's input from the proximal part of the same box. All three
downscale with antialiasing: plain bilinear sampling at 4x reduction would alias the fine
trabecular and growth-plate detail the regressor needs.
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


def wrist_patch(image: np.ndarray, box: np.ndarray | list[float], size: tuple[int, int]) -> torch.Tensor:
    """The wrist stage's input: ``wrist_window`` of an upright (fingers up, left) hand, [1, H, W]."""
    left, top, pw, ph = wrist_window(box, size)
    t = _cut(image, int(round(left)), int(round(top)), max(int(round(pw)), 1), max(int(round(ph)), 1))
    return _resize(t, size[0], size[1])[0]


def square_crop(image: np.ndarray, box: np.ndarray | list[float], margin: float, size: int) -> torch.Tensor:
    """Square crop of side ``margin`` x longest box side, centred on the box, zero outside; [1, size, size]."""
    cx, cy, side = crop_window(box, margin)
    s = max(int(round(side)), 1)
    t = _cut(image, int(round(cx - side / 2)), int(round(cy - side / 2)), s, s)
    return _resize(t, size, size)[0]
