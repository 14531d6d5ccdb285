"""Measurements the phantom tests make on drawn anatomy: bone layers, connected components, regions.

Tests draw a hand's bone layer through a fixed, unrotated frame and measure what is on it
(ossified area, separate ossification centres) instead of trusting the generator's bookkeeping.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from boneage.phantom.anatomy import Layers, draw_plan, plan_hand, sample_hand
from boneage.phantom.raster import Frame

PX_PER_MM = 1.5   # in the hand's own (adult-sized) millimetres, so every age is drawn the same size
SIZE = 336
ORIGIN = (SIZE / 2, SIZE * 0.78)

# The carpus in the body frame: above the radius/ulna epiphyses, below the metacarpal bases.
CARPAL_X = (-22.0, 28.0)
CARPAL_Y = (0.0, 29.5)


def bone_layer(bone_age: float, male: bool, child: int) -> np.ndarray:
    """Bone thickness image of child ``child`` (its individual variation) at ``bone_age``."""
    hand = sample_hand(np.random.default_rng(child), bone_age, male)
    plan = plan_hand(hand)
    layers = Layers.empty(SIZE)
    draw_plan(layers, Frame(ORIGIN, PX_PER_MM / plan.growth), plan)
    return layers.bone


def to_body(px: float, py: float) -> tuple[float, float]:
    return (px - ORIGIN[0]) / PX_PER_MM, (ORIGIN[1] - py) / PX_PER_MM


def components(mask: np.ndarray) -> list[tuple[int, float, float]]:
    """4-connected components of ``mask``: (pixel count, centroid x, centroid y)."""
    return [(len(xs), xs.mean() + 0.5, ys.mean() + 0.5) for ys, xs in component_pixels(mask)]


def component_pixels(mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """4-connected components of ``mask`` as (row indices, column indices)."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    out = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        queue, pys, pxs = deque([(y0, x0)]), [], []
        while queue:
            y, x = queue.popleft()
            pys.append(y)
            pxs.append(x)
            for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                    seen[yy, xx] = True
                    queue.append((yy, xx))
        out.append((np.array(pys), np.array(pxs)))
    return out


def carpal_centres(bone: np.ndarray, min_pixels: int = 3) -> int:
    """Separate ossified centres whose centroid lies in the carpus."""
    # Only the carpus and a margin are labelled: a centre's centroid moves little if a neighbour is cut.
    x0, x1 = (int(ORIGIN[0] + (x + pad) * PX_PER_MM) for x, pad in ((CARPAL_X[0], -6), (CARPAL_X[1], 6)))
    y0, y1 = (int(ORIGIN[1] - (y + pad) * PX_PER_MM) for y, pad in ((CARPAL_Y[1], 6), (CARPAL_Y[0], -6)))
    count = 0
    for n, cx, cy in components(bone[y0:y1, x0:x1] > 0.3):
        bx, by = to_body(cx + x0, cy + y0)
        if n >= min_pixels and CARPAL_X[0] <= bx <= CARPAL_X[1] and CARPAL_Y[0] <= by <= CARPAL_Y[1]:
            count += 1
    return count


def carpal_area(bone: np.ndarray) -> float:
    """Ossified area (mm^2 of the adult-sized frame) in the carpus."""
    x0 = int(ORIGIN[0] + CARPAL_X[0] * PX_PER_MM)
    x1 = int(ORIGIN[0] + CARPAL_X[1] * PX_PER_MM)
    y0 = int(ORIGIN[1] - CARPAL_Y[1] * PX_PER_MM)
    y1 = int(ORIGIN[1] - CARPAL_Y[0] * PX_PER_MM)
    return float((bone[y0:y1, x0:x1] > 0.3).sum()) / PX_PER_MM ** 2


def hand_centres(bone: np.ndarray, min_pixels: int = 3) -> int:
    """Separate ossified pieces in the whole hand (shafts, epiphyses, carpals)."""
    return sum(1 for n, _, _ in components(bone > 0.3) if n >= min_pixels)


def radius_epiphysis_ratio(bone: np.ndarray) -> float | None:
    """Width of the distal radius epiphysis over its metaphysis' width; None when absent or fused."""
    x0, x1 = int(ORIGIN[0] - 4 * PX_PER_MM), int(ORIGIN[0] + 32 * PX_PER_MM)
    y0, y1 = int(ORIGIN[1] - 8 * PX_PER_MM), int(ORIGIN[1] + 45 * PX_PER_MM)
    crop = bone[y0:y1, x0:x1] > 0.3
    shaft_px = (int(ORIGIN[1] + 40 * PX_PER_MM) - y0, int(ORIGIN[0] + 11 * PX_PER_MM) - x0)
    shaft = epi = None
    for ys, xs in component_pixels(crop):
        if np.any((ys == shaft_px[0]) & (xs == shaft_px[1])):
            shaft = (ys, xs)
        elif len(xs) >= 3 and -2 <= (xs.mean() + x0 - ORIGIN[0]) / PX_PER_MM - 11 <= 6 \
                and to_body(0.0, ys.mean() + y0 + 0.5)[1] < 0.0 and ys.max() < shaft_px[0]:  # not a carpal
            epi = (ys, xs) if epi is None or len(xs) > len(epi[1]) else epi
    if shaft is None or epi is None or epi[0].mean() > shaft[0].min():
        return None
    top = shaft[0].min() + 2
    row = shaft[1][shaft[0] == top]
    return float((epi[1].max() - epi[1].min() + 1) / (row.max() - row.min() + 1))


# The distal radius and ulna at high resolution (the physis of a near-mature child is well under a mm).
PHYSIS_PX_PER_MM = 10.0
_PHYSIS_X = {"radius": 11.0, "ulna": -13.0}


def physis_profile(bone_age: float, male: bool, child: int, bone: str = "radius") -> np.ndarray:
    """Bone thickness along the axis of the distal ``bone`` (body y -30 to +10 mm, one value a pixel),
    from the shaft up through the metaphysis, the physis (if any) and the epiphysis towards the carpus."""
    hand = sample_hand(np.random.default_rng(child), bone_age, male)
    plan = plan_hand(hand)
    size = int(40 * PHYSIS_PX_PER_MM)
    layers = Layers.empty(size)
    x_img = size / 2 - _PHYSIS_X[bone] * PHYSIS_PX_PER_MM
    draw_plan(layers, Frame((x_img, 10 * PHYSIS_PX_PER_MM), PHYSIS_PX_PER_MM / plan.growth), plan)
    return layers.bone[::-1, size // 2].copy()  # bottom (shaft, y -30 mm) to top (y +10 mm)


def physis_gaps(profile: np.ndarray, joint_mm: float = 1.8) -> list[float]:
    """Lucent stretches (mm) above the shaft's end and before the joint: the open physes along the axis.

    Walking up from the shaft, every stretch with no bone counts until the first one at least
    ``joint_mm`` long (the radiocarpal joint's cartilage, 2.2 mm in an adult) or the window's end.
    """
    ossified = profile > 0.3
    i = int(np.argmax(ossified))  # the shaft
    gaps: list[float] = []
    while i < len(profile):
        j = i + int(np.argmin(ossified[i:])) if not ossified[i:].all() else len(profile)
        k = j + int(np.argmax(ossified[j:])) if ossified[j:].any() else len(profile)
        if k >= len(profile):
            break
        length = (k - j) / PHYSIS_PX_PER_MM
        if length >= joint_mm:
            break
        gaps.append(length)
        i = k
    return gaps
