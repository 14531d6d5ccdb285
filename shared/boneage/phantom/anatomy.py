"""The procedural left hand: bone layout, individual variation and maturity, drawn into layers.

Geometry is an adult male left hand in a body frame (mm; x towards the thumb, y towards the
fingers, origin mid-way along the distal radio-ulnar articular line), viewed postero-anterior as on
a standard bone age film (thumb on the image's right). A child's hand is the same layout scaled by
``hand_growth`` with maturity-dependent detail: shortened ossified shafts (cartilaginous ends),
carpal centres that appear and grow, epiphyses that appear, widen, cap and fuse. Each child gets
its own size, proportions, finger spread, bone density and a per-centre maturity jitter, so no
single feature gives the age away.

Approximate adult dimensions (metacarpal and phalangeal lengths, widths) follow common
anthropometric figures for adult hands (e.g. metacarpal 3 ~63-65 mm, proximal phalanx 3 ~45 mm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from boneage.phantom import maturity as mat
from boneage.phantom.raster import Frame, Point, blob, long_bone

# Carpal bones: centre (mm), long-axis angle (deg from +x), semi-axes (mm), squareness when mature.
_CARPALS: dict[str, tuple[Point, float, float, float, float]] = {
    "capitate": ((3.0, 25.5), 90.0, 8.5, 5.0, 2.8),
    "hamate": ((-9.0, 24.5), 80.0, 8.0, 5.0, 2.6),
    "triquetrum": ((-11.0, 10.5), 30.0, 5.2, 4.5, 2.4),
    "lunate": ((2.5, 9.0), 90.0, 6.5, 6.0, 2.3),
    "scaphoid": ((14.5, 9.5), 60.0, 8.5, 5.0, 2.2),
    "trapezium": ((24.5, 22.5), 30.0, 5.5, 5.0, 2.6),
    "trapezoid": ((13.5, 27.5), 90.0, 4.5, 4.3, 2.8),
    "pisiform": ((-14.5, 6.5), 0.0, 3.8, 3.6, 2.0),
}

# Rays: metacarpal base (mm), angle (deg, + towards the thumb), then bone lengths (mm) and
# radii (base, waist, head) of the metacarpal and each phalanx, proximal to distal.
_RAYS: dict[str, dict] = {
    "thumb": dict(base=(22.5, 32.0), angle=38.0, spread=-8.0, soft=10.0,
                  bones=[("metacarpal1", 44.0, (7.0, 4.6, 6.8)), ("proximal", 31.0, (6.0, 3.9, 5.0)),
                         ("distal", 22.0, (5.2, 3.2, 3.6))]),
    "index": dict(base=(11.5, 38.0), angle=7.0, spread=4.0, soft=8.5,
                  bones=[("metacarpal", 66.0, (6.2, 3.9, 6.4)), ("proximal", 40.0, (5.6, 3.8, 4.6)),
                         ("middle", 23.0, (4.9, 3.3, 4.1)), ("distal", 16.0, (4.3, 2.6, 3.1))]),
    "middle": dict(base=(2.0, 39.5), angle=0.0, spread=0.0, soft=9.0,
                   bones=[("metacarpal", 63.0, (6.5, 4.0, 6.6)), ("proximal", 45.0, (5.8, 3.9, 4.7)),
                          ("middle", 28.0, (5.0, 3.4, 4.2)), ("distal", 18.0, (4.4, 2.7, 3.2))]),
    "ring": dict(base=(-7.5, 37.0), angle=-7.0, spread=-4.0, soft=8.5,
                 bones=[("metacarpal", 56.0, (5.8, 3.6, 6.1)), ("proximal", 42.0, (5.5, 3.7, 4.5)),
                        ("middle", 27.0, (4.8, 3.3, 4.0)), ("distal", 17.0, (4.2, 2.6, 3.1))]),
    "little": dict(base=(-16.0, 33.0), angle=-15.0, spread=-8.0, soft=7.5,
                   bones=[("metacarpal", 52.0, (5.4, 3.4, 5.8)), ("proximal", 33.0, (5.0, 3.4, 4.2)),
                          ("middle", 19.0, (4.4, 3.0, 3.7)), ("distal", 15.0, (4.0, 2.4, 2.9))]),
}

JOINT_GAP = 2.2  # mm of articular cartilage between adjacent bones in an adult


@dataclass
class Hand:
    """One sampled hand: who it is (age, sex, individual variation) in body-frame terms."""

    bone_age: float
    male: bool
    growth: float                  # hand length relative to an adult male's
    width_factor: float            # bone widths
    spread: dict[str, float]       # extra finger angle (deg)
    lengths: dict[str, float]      # per-bone length factors, key "<ray>.<i>"
    age_jitter: dict[str, float]   # per-centre maturity offset (months)
    density: float
    soft_thickness: float
    palm_width: float
    carpal_shift: dict[str, Point]  # per-carpal position offsets (mm)

    def age(self, key: str) -> float:
        """Effective bone age of one centre: the hand's age plus that centre's own jitter."""
        return max(self.bone_age + self.age_jitter.get(key, 0.0), 0.0)


def sample_hand(rng: np.random.Generator, bone_age: float, male: bool) -> Hand:
    # Per-centre jitter grows with age (maturity scatters more in older children); 3 months at birth.
    sigma = 3.0 + 0.04 * bone_age
    keys = list(_CARPALS) + ["radius", "ulna", "sesamoid"]
    for ray, spec in _RAYS.items():
        keys += [f"{ray}.{i}" for i in range(len(spec["bones"]))]
    jitter = {k: float(v) for k, v in zip(keys, rng.normal(0.0, sigma, len(keys)))}
    lengths = {}
    for ray, spec in _RAYS.items():
        for i in range(len(spec["bones"])):
            lengths[f"{ray}.{i}"] = float(rng.normal(1.0, 0.035))
    spread_scale = rng.uniform(0.3, 1.6)
    spread = {ray: float(spec["spread"] * spread_scale + rng.normal(0.0, 3.0)) for ray, spec in _RAYS.items()}
    spread["thumb_abduction"] = float(rng.normal(0.0, 6.0))
    return Hand(
        bone_age=float(bone_age), male=male,
        growth=mat.hand_growth(bone_age, male) * float(rng.normal(1.0, 0.06)),
        width_factor=float(rng.normal(1.0, 0.06)), spread=spread, lengths=lengths, age_jitter=jitter,
        density=float(rng.uniform(0.85, 1.15)) * (0.8 + 0.2 * min(bone_age / 120.0, 1.0)),
        soft_thickness=float(rng.uniform(0.85, 1.2)), palm_width=float(rng.normal(1.0, 0.04)),
        carpal_shift={name: (float(dx), float(dy)) for name, (dx, dy) in zip(_CARPALS, rng.normal(0.0, 0.7, (len(_CARPALS), 2)))},
    )


def _unit(angle_deg: float) -> Point:
    a = math.radians(angle_deg)
    return math.sin(a), math.cos(a)


def _add(p: Point, d: Point, t: float) -> Point:
    return p[0] + d[0] * t, p[1] + d[1] * t


@dataclass
class Layers:
    """Thickness layers of one image. Soft tissue is smooth, so it is drawn at half resolution."""

    bone: np.ndarray   # bone projected thickness (pixels), additive
    soft: np.ndarray   # soft-tissue thickness (half-resolution pixels), combined by max

    @classmethod
    def empty(cls, size: int) -> "Layers":
        half = (size + 1) // 2
        return cls(np.zeros((size, size), np.float32), np.zeros((half, half), np.float32))

    def frame(self, layer: str, frame: Frame) -> Frame:
        if layer == "bone":
            return frame
        return Frame((frame.origin[0] / 2, frame.origin[1] / 2), frame.scale / 2, frame.angle, frame.mirror)

    def soft_full(self) -> np.ndarray:
        """Soft-tissue thickness in full-resolution pixels."""
        size = self.bone.shape[0]
        h, w = self.soft.shape
        up = np.broadcast_to((self.soft * np.float32(2.0))[:, None, :, None], (h, 2, w, 2)).reshape(2 * h, 2 * w)
        return up[:size, :size]


def _epiphysis(ops: list, hand: Hand, key: str, family: str, shaft_end: Point,
               outward: Point, r_end: float, e_end: float) -> None:
    """Draw the epiphysis beyond ``shaft_end`` (where the metaphysis cap starts) in ``outward``."""
    timing = mat.EPIPHYSES[family][int(hand.male)]
    state = mat.epiphysis_state(hand.age(key), timing)
    if not state.present:
        return
    # The hand's own maturity overrides a centre's jitter at the end: a child's distal radius/ulna keep
    # a thin physis, an adult's physes are all closed (``maturity.physis_gap``).
    state = replace(state, gap=mat.physis_gap(state.gap, family, hand.bone_age, hand.male))
    w = hand.width_factor
    half_width = r_end * w * state.width * (1.0 + 0.1 * state.capping)
    thickness = r_end * w * (0.12 + 0.22 * min(state.width, 1.0))  # semi-axis along the bone
    # Open physis: a dark gap. Fusing: it closes and the two overlap a little, leaving the bright scar
    # line a fused physis shows.
    gap = 0.2 + 1.4 * state.gap - 0.45 * (1.0 - state.gap)
    cap_len = e_end * r_end * w
    # Capping moves the disc over the metaphysis; the cut keeps a physis gap so it wraps as a crescent.
    centre_off = cap_len + gap + thickness * (1.0 - 0.55 * state.capping)
    centre = _add(shaft_end, outward, centre_off)
    cut = (shaft_end, outward, cap_len + gap, r_end * w + gap)
    density = hand.density * (1.0 if state.gap > 0.05 else 1.05)
    cortex = 0.35
    if hand.bone_age >= mat.MATURE_MONTHS[hand.male]:
        # Adult: the epiphysis has merged into the metaphysis, one bone end of the shaft's density
        # without its own cortical rim against the old physis; only a faint scar line is left.
        density, cortex = hand.density * 1.35, 0.12
    ops.append((blob, "bone", (centre, outward, thickness, half_width),
                dict(density=density, power=2.3, cortex=cortex, cut=cut)))


@dataclass
class HandPlan:
    """The hand's primitives in adult-hand mm (``hand_frame`` applies growth) and its outline points."""

    ops: list            # (draw function, layer name, args, kwargs)
    outline: list[Point]  # fingertips, palm and distal forearm: the hand box
    growth: float


def plan_hand(hand: Hand) -> HandPlan:
    """Lay out ``hand``'s soft tissue and bones; nothing is drawn until ``draw_plan``."""
    w = hand.width_factor
    cart = (0.94 - mat.ossified_fraction(hand.bone_age, hand.male)) / 0.2  # 1 at birth, 0 at maturity
    dens = hand.density
    ops: list = []
    outline: list[Point] = []

    # Forearm, wrist and palm soft tissue.
    st = hand.soft_thickness
    # The distal forearm is narrower than the palm and about 45 mm thick (half-chord ~22 mm).
    ops.append((long_bone, "soft", ((0.0, -400.0), (0.0, 8.0), 29 * st, 26 * st, 28 * st),
                dict(e0=1.0, e1=1.0, cortex=0.0, mode="max", density=0.8)))
    # The palm is flatter than it is wide: its chord is scaled down to ~15 mm.
    ops.append((blob, "soft", ((0.0, 55.0), (0.0, 1.0), 52.0, 34.0 * hand.palm_width * st),
                dict(power=2.6, mode="max", density=0.45 * st)))
    ops.append((blob, "soft", ((24.0, 32.0), _unit(38.0), 30.0, 14.0 * st), dict(mode="max", density=0.8)))
    outline += [(-27 * st, -35.0), (27 * st, -35.0), (-34.0 * st, 55.0), (36.0 * st, 55.0)]

    # Radius and ulna: shafts run off the film; epiphyses at their distal ends.
    rad_end = (11.0, -12.0 - 6.0 * cart)
    ops.append((long_bone, "bone", ((11.0, -400.0), rad_end, 9.5 * w, 8.0 * w, 13.5 * w),
                dict(e0=0.3, e1=0.22, density=dens)))
    _epiphysis(ops, hand, "radius", "radius", rad_end, (0.0, 1.0), 13.5, 0.22)
    uln_end = (-13.0, -15.5 - 6.0 * cart)
    ops.append((long_bone, "bone", ((-13.0, -400.0), uln_end, 6.5 * w, 5.5 * w, 7.5 * w),
                dict(e0=0.3, e1=0.3, density=dens)))
    _epiphysis(ops, hand, "ulna", "ulna", uln_end, (0.0, 1.0), 7.5, 0.3)

    # Carpals: appear at sex-specific ages, grow, and turn from round to angular.
    for name, (centre, angle, ra, rb, square) in _CARPALS.items():
        size = mat.carpal_size(hand.age(name), name, hand.male)
        if size <= 0.0:
            continue
        # Young centres are round; adult carpals take their own proportions and squareness.
        shape = min(size, 1.0)
        mean_r = (ra + rb) / 2
        a = (mean_r + (ra - mean_r) * shape) * size * w
        b = (mean_r + (rb - mean_r) * shape) * size * w
        power = 2.0 + (square - 2.0) * shape
        shift = hand.carpal_shift[name]
        ops.append((blob, "bone", ((centre[0] + shift[0], centre[1] + shift[1]), _unit(90.0 - angle), a, b),
                    dict(density=dens * 0.95, power=power, cortex=0.4)))

    # Rays: metacarpal then phalanges, each bone a shaft plus (when present) an epiphysis.
    for ray, spec in _RAYS.items():
        angle = spec["angle"] + (hand.spread["thumb_abduction"] if ray == "thumb" else 0.0)
        d = _unit(angle)
        joint = spec["base"]
        for i, (family, length, (r0, rm, r1)) in enumerate(spec["bones"]):
            key = f"{ray}.{i}"
            if i >= 1:
                angle += hand.spread[ray] * (1.0 if i == 1 else 0.3)
                d = _unit(angle)
            L = length * hand.lengths[key]
            far = _add(joint, d, L)
            proximal_epi = family != "metacarpal"  # MC2-5 have distal epiphyses; MC1 and phalanges proximal
            fam = "metacarpal" if family == "metacarpal1" else family
            # Room for the epiphysis and cartilage at each end shrinks as the bone ossifies.
            epi_room = (1.1 + 0.5 * cart) * (r0 if proximal_epi else r1) * w
            plain_room = (0.15 + 0.12 * cart) * L * 0.25
            e0, e1 = (0.25, 0.45) if proximal_epi else (0.35, 0.3)
            if family == "distal":
                e1 = 0.9  # the round tuft
            if proximal_epi:
                p0 = _add(joint, d, epi_room)
                p1 = _add(far, d, -plain_room - e1 * r1 * w)
            else:
                p0 = _add(joint, d, plain_room + e0 * r0 * w)
                p1 = _add(far, d, -epi_room)
            ops.append((long_bone, "bone", (p0, p1, r0 * w, rm * w, r1 * w), dict(e0=e0, e1=e1, density=dens)))
            if proximal_epi:
                _epiphysis(ops, hand, key, fam, p0, (-d[0], -d[1]), r0, e0)
            else:
                _epiphysis(ops, hand, key, fam, p1, d, r1, e1)
            if ray == "thumb" and i == 0:
                # Adductor sesamoid at the thumb MCP joint: a puberty marker.
                ses_age = hand.age("sesamoid") - mat.SESAMOID_ONSET[int(hand.male)]
                if ses_age > 0:
                    r = 2.6 * w * (0.35 + 0.65 * min(ses_age / 36.0, 1.0))
                    side = _unit(angle - 90.0)
                    ops.append((blob, "bone", (_add(_add(far, d, -3.0), side, r1 * 0.9), d, r, r * 0.85),
                                dict(density=dens, cortex=0.3)))
            joint = _add(far, d, JOINT_GAP)
        # Finger soft tissue from the web to beyond the fingertip.
        start = spec["base"] if ray == "thumb" else _add(spec["base"], _unit(spec["angle"]), 50.0)
        tip = _add(joint, d, 3.0)
        sr = spec["soft"] * st
        ops.append((long_bone, "soft", (start, tip, sr * 1.1, sr * 0.95, sr),
                    dict(e0=1.0, e1=1.0, cortex=0.0, mode="max")))
        outline += [_add(tip, d, sr), _add(tip, (d[1], -d[0]), sr), _add(tip, (-d[1], d[0]), sr)]
    return HandPlan(ops, outline, hand.growth)


def hand_frame(frame: Frame, plan: HandPlan) -> Frame:
    """``frame`` is in real mm; the plan is in adult-hand mm, so scale by the hand's growth."""
    return Frame(frame.origin, frame.scale * plan.growth, frame.angle, frame.mirror)


def draw_plan(layers: Layers, frame: Frame, plan: HandPlan) -> None:
    f = hand_frame(frame, plan)
    frames = {"bone": f, "soft": layers.frame("soft", f)}
    for fn, layer, args, kwargs in plan.ops:
        fn(getattr(layers, layer), frames[layer], *args, **kwargs)


def hand_box(frame: Frame, plan: HandPlan) -> list[float]:
    """Axis-aligned pixel box of the hand (fingertips to distal forearm), unclipped."""
    f = hand_frame(frame, plan)
    pts = np.array([f.point(p) for p in plan.outline])
    return [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]


WRIST_REGION = [(-24.0, -22.0), (32.0, -22.0), (32.0, 40.0), (-24.0, 40.0)]


def region_box(frame: Frame, plan: HandPlan, corners: list[Point]) -> list[float]:
    f = hand_frame(frame, plan)
    pts = np.array([f.point(p) for p in corners])
    return [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]
