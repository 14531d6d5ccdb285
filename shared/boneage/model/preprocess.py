"""Image geometry shared by training and inference, so both see pixels prepared the same way.

``letterbox`` fits any image into the detector's square input (aspect kept, zero border);
``square_crop`` cuts the regressor's input around a hand box from the full-resolution image. Both
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


def square_crop(image: np.ndarray, box: np.ndarray | list[float], margin: float, size: int) -> torch.Tensor:
    """Square crop of side ``margin`` x longest box side, centred on the box, zero outside; [1, size, size]."""
    cx, cy, side = crop_window(box, margin)
    h, w = image.shape
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(int(round(side)), 1)
    canvas = np.zeros((s, s), dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + s, w), min(y0 + s, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    t = _resize(torch.from_numpy(canvas)[None, None], size, size)
    return t[0]
