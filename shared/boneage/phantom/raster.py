"""Fast vectorised drawing of the phantom's primitives (long bones, ellipses) into numpy images.

Shapes are described in a body frame (millimetres, y towards the fingers) and drawn straight into
image pixels through a similarity transform (``Frame``: mirror, rotation, scale, shift), so a
rotated, mirrored or rescaled hand costs no image resampling. Each primitive is evaluated only on
its bounding box. Values are projected thickness (chord length through a tube or ellipsoid, in
pixels), which is what an X-ray integrates: a hollow tube gives the bright cortical rim of a bone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True)
class Frame:
    """Body frame (mm, x to the thumb side, y distal) -> image pixels (x right, y down)."""

    origin: Point        # image position of the body origin, pixels
    scale: float         # pixels per mm
    angle: float = 0.0   # radians, counter-clockwise as seen on the image
    mirror: bool = False  # True draws the right hand (x -> -x before rotating)

    def point(self, p: Point) -> Point:
        x, y = (-p[0] if self.mirror else p[0]), p[1]
        c, s = math.cos(self.angle), math.sin(self.angle)
        xr, yr = c * x - s * y, s * x + c * y
        return self.origin[0] + self.scale * xr, self.origin[1] - self.scale * yr

    def direction(self, v: Point) -> Point:
        """Unit image direction of a body-frame vector."""
        x, y = (-v[0] if self.mirror else v[0]), v[1]
        c, s = math.cos(self.angle), math.sin(self.angle)
        xr, yr = c * x - s * y, -(s * x + c * y)
        n = math.hypot(xr, yr) or 1.0
        return xr / n, yr / n


def _window(shape: tuple[int, int], x0f: float, y0f: float, x1f: float, y1f: float):
    """Pixel window covering the float box [x0f, x1f] x [y0f, y1f], clipped to the image."""
    h, w = shape
    x0, x1 = max(int(math.floor(x0f)) - 1, 0), min(int(math.ceil(x1f)) + 1, w)
    y0, y1 = max(int(math.floor(y0f)) - 1, 0), min(int(math.ceil(y1f)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    return (slice(y0, y1), slice(x0, x1)), xs, ys


def _clip_segment(shape: tuple[int, int], a: Point, b: Point, pad: float) -> tuple[float, float] | None:
    """Parameter range [t0, t1] of segment a->b inside the image grown by ``pad`` (Liang-Barsky)."""
    h, w = shape
    t0, t1 = 0.0, 1.0
    d = (b[0] - a[0], b[1] - a[1])
    for p, q in ((-d[0], a[0] + pad), (d[0], w + pad - a[0]), (-d[1], a[1] + pad), (d[1], h + pad - a[1])):
        if abs(p) < 1e-12:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
    return (t0, t1) if t0 <= t1 else None


def _profile2(q2: np.ndarray, cortex: float) -> np.ndarray:
    """Chord through a unit tube at squared normalised radius q2; ``cortex`` hollows the middle (0 = solid)."""
    outer = np.sqrt(np.maximum(np.float32(1.0) - q2, 0.0))
    if cortex <= 0.0:
        return outer
    inner = np.sqrt(np.maximum(np.float32(0.36) - q2, 0.0))  # marrow cavity: 60 % of the radius
    inner *= np.float32(cortex)
    outer -= inner
    return outer


def _combine(target: np.ndarray, sl, value: np.ndarray, mode: str) -> None:
    if mode == "max":
        np.maximum(target[sl], value, out=target[sl])
    else:
        target[sl] += value


def long_bone(target: np.ndarray, frame: Frame, p0: Point, p1: Point, r0: float, rmid: float, r1: float, *,
              e0: float = 0.5, e1: float = 0.5, density: float = 1.0, cortex: float = 0.75,
              mode: str = "add") -> None:
    """A bone from ``p0`` to ``p1`` (mm) with end radii ``r0``/``r1`` and a waist ``rmid``.

    The ends are half-ellipses ``e`` radii long, so a metaphysis can be flat (small e) or round.
    Long or oblique bones are evaluated in chunks along their axis, each on its own small window,
    so a rotated forearm does not cost a full-image pass.
    """
    a_img, b_img = frame.point(p0), frame.point(p1)
    s = frame.scale
    length = math.hypot(b_img[0] - a_img[0], b_img[1] - a_img[1])
    if length < 1e-6:
        return
    ux, uy = (b_img[0] - a_img[0]) / length, (b_img[1] - a_img[1]) / length
    R0, RM, R1 = r0 * s, rmid * s, r1 * s
    pad = max(R0, R1, RM) * (1.0 + max(e0, e1))
    span = _clip_segment(target.shape, a_img, b_img, pad)
    if span is None:
        return
    t0, t1 = span
    n = max(1, int(math.ceil((t1 - t0) * length / max(6.0 * max(R0, R1, RM), 40.0))))
    inv_len = 1.0 / length
    for k in range(n):
        ta, tb = t0 + (t1 - t0) * k / n, t0 + (t1 - t0) * (k + 1) / n
        pa = (a_img[0] + ux * length * ta, a_img[1] + uy * length * ta)
        pb = (a_img[0] + ux * length * tb, a_img[1] + uy * length * tb)
        win = _window(target.shape, min(pa[0], pb[0]) - pad, min(pa[1], pb[1]) - pad,
                      max(pa[0], pb[0]) + pad, max(pa[1], pb[1]) + pad)
        if win is None:
            continue
        sl, xs, ys = win
        dx, dy = xs - np.float32(a_img[0]), ys - np.float32(a_img[1])
        along = dx * np.float32(ux) + dy * np.float32(uy)
        c = dy * np.float32(ux) - dx * np.float32(uy)
        c2 = c * c
        # Past either end the shape is a half-ellipse cap: the along-axis excess, scaled by that
        # end's cap length, adds to the across term (the radius there is already the end radius).
        inside = np.clip(along, 0.0, np.float32(length))
        excess = along - inside
        u = inside * np.float32(inv_len)
        v = 1.0 - u
        # Concave waist: radius eases from the ends towards rmid.
        radius = np.float32(RM) + np.float32(R0 - RM) * (v * v * v) + np.float32(R1 - RM) * (u * u * u)
        cap = np.where(excess < 0, np.float32(1.0 / (e0 * R0)), np.float32(1.0 / (e1 * R1)))
        excess *= cap
        q2 = c2 / (radius * radius)
        q2 += excess * excess
        value = (np.float32(density) * radius) * _profile2(q2, cortex)
        # Each pixel belongs to exactly one chunk, by where it projects on the axis.
        if k > 0:
            value = np.where(along >= np.float32(ta * length), value, np.float32(0.0))
        if k < n - 1:
            value = np.where(along < np.float32(tb * length), value, np.float32(0.0))
        _combine(target, sl, value, mode)


def blob(target: np.ndarray, frame: Frame, centre: Point, axis: Point, ra: float, rb: float, *,
         density: float = 1.0, power: float = 2.0, cortex: float = 0.0, mode: str = "add",
         cut: tuple[Point, Point, float, float] | None = None, cut_soft: float = 1.0) -> None:
    """An ellipse (or superellipse, ``power`` > 2 is squarer) with semi-axes ``ra`` along ``axis``.

    ``cut`` = (centre, axis, ra, rb) removes another ellipse from it, which shapes a capping
    epiphysis into a crescent around its metaphysis.
    """
    c_img = frame.point(centre)
    ux, uy = frame.direction(axis)
    s = frame.scale
    RA, RB = ra * s, rb * s
    if power <= 2.0:  # exact extent of a rotated ellipse
        hx, hy = math.hypot(RA * ux, RB * uy), math.hypot(RA * uy, RB * ux)
    else:  # squarer shapes: the rotated bounding rectangle
        hx, hy = RA * abs(ux) + RB * abs(uy), RA * abs(uy) + RB * abs(ux)
    win = _window(target.shape, c_img[0] - hx, c_img[1] - hy, c_img[0] + hx, c_img[1] + hy)
    if win is None or min(RA, RB) < 0.05:
        return
    sl, xs, ys = win
    dx, dy = xs - c_img[0], ys - c_img[1]
    a = (dx * ux + dy * uy) / RA
    b = (dx * (-uy) + dy * ux) / RB
    if power == 2.0:
        q2 = a * a
        q2 += b * b
    else:
        q2 = (np.abs(a) ** power + np.abs(b) ** power) ** (2.0 / power)
    value = np.float32(density * min(RA, RB)) * _profile2(q2, cortex)
    if cut is not None:
        cc, caxis, cra, crb = cut
        k_img = frame.point(cc)
        vx, vy = frame.direction(caxis)
        ex, ey = xs - k_img[0], ys - k_img[1]
        ca = (ex * vx + ey * vy) / (cra * s)
        cb = (ex * (-vy) + ey * vx) / (crb * s)
        # Soft edge about one pixel wide keeps the crescent free of aliasing.
        edge = (np.hypot(ca, cb) - 1.0) * (min(cra, crb) * s) / cut_soft
        value = value * np.clip(edge, 0.0, 1.0)
    _combine(target, sl, value, mode)
