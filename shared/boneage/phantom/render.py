"""``render_sample``: one phantom radiograph and its labels, fast enough to train on the fly.

A sample is a scene (one left hand, a right hand, two hands, an adult hand or something that is
not a hand) drawn as soft-tissue and bone thickness layers, turned into an X-ray-like image
(attenuation, blur, exposure, noise) and then given the nuisances real films have: rotation, scale,
position, collimation edges, lead "L"/"R" markers and burnt-in text, gamma, inversion. All
randomness comes from the ``rng`` passed in, so a seeded generator gives identical output.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from boneage.errors import Rejection
from boneage.phantom import maturity as mat
from boneage.phantom.anatomy import WRIST_REGION, HandPlan, Layers, draw_plan, hand_box, plan_hand, \
    region_box, sample_hand
from boneage.phantom.raster import Frame, blob, long_bone

KINDS = ("left", "right", "two_hands", "non_hand", "adult")
# Reason code of a Rejection for arguments the phantom cannot honour (bad kind, size, age, mix).
INVALID_REQUEST = "invalid_phantom_request"
NON_HAND_SUBTYPES = ("foot", "chest", "abstract")

# Length of a hand plus the distal forearm shown on a bone age film, adult-hand mm (wrist -35 mm
# to the middle fingertip ~205 mm): what the framing fits into the image.
_HAND_SPAN_MM = 240.0
_HAND_CENTRE = (3.0, 85.0)
# Field of view without nuisance: a fixed 300 mm across (an adult hand fits), so a child's hand looks smaller.
_CLEAN_FOV_MM = 300.0


def sample_bone_age(rng: np.random.Generator, kind: str, male: bool) -> float:
    mature = mat.MATURE_MONTHS[male]
    if kind == "adult":
        return float(rng.uniform(mature, mature + 60.0))
    return float(rng.uniform(1.0, mature - 1.0))


def sample_chronological_age(rng: np.random.Generator, bone_age: float, male: bool) -> float:
    """CA = BA minus a normal deviation with the GP SD for that age and sex (never below 2 weeks)."""
    return float(max(bone_age - rng.normal(0.0, mat.gp_sd_months(bone_age, male)), 0.5))


def render_sample(rng: np.random.Generator, *, kind: str = "left", bone_age_months: float | None = None,
                  male: bool | None = None, size: int = 512, nuisance: bool = True) -> tuple[np.ndarray, dict]:
    """One phantom: float32 ``size`` x ``size`` image in [0, 1] (bright bone) and its labels.

    Labels: ``boneage`` (months), ``male``, ``kind``, ``chronological_age_months``, ``hand_boxes``
    ([x0, y0, x1, y1] pixels, one per hand, fingertips to the distal forearm, clipped to the
    image), ``wrist_boxes`` (the carpal region of each hand, same order), ``inverted``,
    ``rotation_deg``, ``mirrored``, ``subtype`` (non-hand scenes: foot, chest, abstract),
    ``pixel_spacing_mm``, ``gamma``, ``marker`` (the burnt-in lead letter, "" if none),
    ``collimated`` (a collimation edge crosses the film).

    Kinds: "left" (the default), "right" (the same anatomy mirrored), "two_hands" (one child's
    right hand on the image's left, then its left hand: boxes in that order), "non_hand" (no hand;
    ``boneage``/``male`` describe the synthetic patient only), "adult" (bone age at or beyond
    maturity: 216 months girls, 228 boys; every physis fused). ``nuisance=False`` gives a clean,
    upright, centred film with a fixed 300 mm field of view, so hand size shows age.
    """
    if kind not in KINDS:
        raise Rejection(INVALID_REQUEST, f"unknown phantom kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not 32 <= int(size) <= 8192:
        raise Rejection(INVALID_REQUEST, f"phantom size must be 32..8192 pixels, got {size}")
    size = int(size)
    if bone_age_months is not None and not 0.0 <= float(bone_age_months) <= 360.0:
        raise Rejection(INVALID_REQUEST, f"phantom bone age must be 0..360 months, got {bone_age_months}")
    if male is None:
        male = bool(rng.random() < 0.5)
    male = bool(male)  # labels stay JSON-serialisable when a caller passes numpy booleans
    if bone_age_months is None:
        bone_age_months = sample_bone_age(rng, kind, male)
    ba = float(bone_age_months)
    ca = sample_chronological_age(rng, min(ba, mat.MATURE_MONTHS[male]), male) + max(ba - mat.MATURE_MONTHS[male], 0)

    layers = Layers.empty(size)
    labels: dict[str, Any] = {
        "boneage": round(ba, 3), "male": male, "kind": kind, "chronological_age_months": round(ca, 3),
        "hand_boxes": [], "wrist_boxes": [], "inverted": False, "rotation_deg": 0.0, "mirrored": False,
        "subtype": "", "gamma": 1.0, "marker": "", "collimated": False,
    }

    if kind == "non_hand":
        fov = float(rng.uniform(250.0, 420.0)) if nuisance else 350.0
        scale = size / fov
        labels["subtype"], rotation = _draw_non_hand(rng, layers, size, scale, nuisance)
        labels["rotation_deg"] = round(rotation, 3)
    else:
        hand = sample_hand(rng, ba, male)
        plan = plan_hand(hand)
        if kind == "two_hands":
            scale, rotation = _place_two(rng, layers, plan, size, nuisance, labels)
        else:
            mirror = kind == "right"
            scale, rotation = _place_one(rng, layers, plan, size, nuisance, mirror, labels)
            labels["mirrored"] = mirror
        labels["rotation_deg"] = round(rotation, 3)
    labels["pixel_spacing_mm"] = round(1.0 / scale, 5)

    img = _expose(rng, layers, scale, nuisance)
    img = _nuisances(rng, img, labels, kind) if nuisance else _apply_lut(img, _display_lut(0.03, 1.0, False))
    labels["hand_boxes"] = [_clip_box(b, size) for b in labels["hand_boxes"]]
    labels["wrist_boxes"] = [_clip_box(b, size) for b in labels["wrist_boxes"]]
    return img, labels


def _clip_box(box: list[float], size: int) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(min(max(v, 0.0), float(size)), 2) for v in (x0, y0, x1, y1)]


def _fit_origin(rng: np.random.Generator, box: list[float], size: int, lo: float, hi: float,
                jitter: bool) -> tuple[float, float]:
    """Shift (dx, dy) that puts ``box`` (drawn at origin 0, 0) inside [lo, hi] of the image."""
    shifts = []
    for a, b in ((box[0], box[2]), (box[1], box[3])):
        low, high = lo * size - a, hi * size - b
        if low > high or not jitter:  # too big to fit, or no nuisance: centre it
            shifts.append(((lo + hi) * size - a - b) / 2)
        else:
            shifts.append(float(rng.uniform(low, high)))
    return shifts[0], shifts[1]


def _place_one(rng: np.random.Generator, layers: Layers, plan: HandPlan, size: int, nuisance: bool,
               mirror: bool, labels: dict) -> tuple[float, float]:
    if nuisance:
        fill = float(rng.uniform(0.55, 0.92))
        scale = fill * size / (_HAND_SPAN_MM * plan.growth)  # pixels per real mm
        rotation = float(rng.uniform(-32.0, 32.0))
    else:
        scale, rotation = size / _CLEAN_FOV_MM, 0.0
    frame = Frame((0.0, 0.0), scale, math.radians(rotation), mirror)
    box = hand_box(frame, plan)
    if nuisance:
        dx, dy = _fit_origin(rng, box, size, 0.02, 0.98, True)
    else:
        # Centre the hand's middle on the image, so size differences with age stay visible.
        cx, cy = Frame((0.0, 0.0), scale * plan.growth, 0.0, mirror).point(_HAND_CENTRE)
        dx, dy = size / 2 - cx, size / 2 - cy
    frame = Frame((dx, dy), scale, math.radians(rotation), mirror)
    draw_plan(layers, frame, plan)
    labels["hand_boxes"].append(hand_box(frame, plan))
    labels["wrist_boxes"].append(region_box(frame, plan, WRIST_REGION))
    return scale, rotation


def _place_two(rng: np.random.Generator, layers: Layers, plan: HandPlan, size: int, nuisance: bool,
               labels: dict) -> tuple[float, float]:
    """Both hands of one child side by side, as on a PA film: right hand on the image's left."""
    fill = float(rng.uniform(0.5, 0.8)) if nuisance else 0.65
    scale = fill * size / (_HAND_SPAN_MM * plan.growth)
    rotations = []
    for mirror, (lo, hi) in ((True, (0.01, 0.5)), (False, (0.5, 0.99))):
        rotation = float(rng.uniform(-15.0, 15.0)) if nuisance else 0.0
        frame = Frame((0.0, 0.0), scale, math.radians(rotation), mirror)
        box = hand_box(frame, plan)
        # Vertical placement anywhere that fits; horizontally each hand stays in its half.
        dx = _fit_origin(rng, [box[0], 0, box[2], 0], size, lo, hi, nuisance)[0]
        dy = _fit_origin(rng, [0, box[1], 0, box[3]], size, 0.02, 0.98, nuisance)[1]
        frame = Frame((dx, dy), scale, math.radians(rotation), mirror)
        draw_plan(layers, frame, plan)
        labels["hand_boxes"].append(hand_box(frame, plan))
        labels["wrist_boxes"].append(region_box(frame, plan, WRIST_REGION))
        rotations.append(rotation)
    return scale, float(np.mean(rotations))


def _draw_non_hand(rng: np.random.Generator, layers: Layers, size: int, scale: float,
                   nuisance: bool) -> tuple[str, float]:
    """Something a bone age service must reject: a foot, a chest, or anatomy-free structures.

    Returns the subtype and the rotation (degrees) it was drawn at."""
    subtype = NON_HAND_SUBTYPES[int(rng.integers(len(NON_HAND_SUBTYPES)))]
    centre = (size / 2 + rng.uniform(-0.1, 0.1) * size, size / 2 + rng.uniform(-0.1, 0.1) * size)
    rotation = float(rng.uniform(-30, 30)) if nuisance else 0.0
    frame = Frame(centre, scale * float(rng.uniform(0.5, 1.0)), math.radians(rotation), bool(rng.random() < 0.5))
    soft_frame = layers.frame("soft", frame)
    if subtype == "foot":
        # Sole, five rays of metatarsal + short toes, and the tarsal block.
        blob(layers.soft, soft_frame, (0.0, 10.0), (0.0, 1.0), 125.0, 45.0, power=2.2, mode="max", density=0.45)
        for k, x in enumerate((-28.0, -12.0, 2.0, 15.0, 27.0)):
            base, L = (x * 0.8, -20.0), 62.0 - 4 * abs(k - 1)
            tip = (x * 1.05, -20.0 + L)
            long_bone(layers.bone, frame, base, tip, 6.0, 3.5, 5.5, density=1.0)
            toe = (x * 1.1, tip[1] + 8.0)
            long_bone(layers.bone, frame, toe, (x * 1.12, toe[1] + (30.0 if k == 0 else 18.0)), 5.0, 3.5, 4.0)
            long_bone(layers.soft, soft_frame, toe, (x * 1.12, toe[1] + 38.0), 10.0, 9.0, 9.0, e1=1.0, cortex=0.0,
                      mode="max")
        blob(layers.bone, frame, (0.0, -95.0), (0.0, 1.0), 35.0, 22.0, cortex=0.4)   # calcaneus
        blob(layers.bone, frame, (5.0, -60.0), (0.0, 1.0), 20.0, 18.0, cortex=0.4)   # talus
        for x in (-20.0, -4.0, 12.0):
            blob(layers.bone, frame, (x, -32.0), (0.0, 1.0), 9.0, 7.5, cortex=0.4, power=2.5)
    elif subtype == "chest":
        # Half-chords of ~25 mm of tissue, less over the (air-filled) lungs.
        blob(layers.soft, soft_frame, (0.0, 0.0), (0.0, 1.0), 170.0, 160.0, power=3.0, mode="max", density=0.16)
        for side in (-1.0, 1.0):
            blob(layers.soft, soft_frame, (side * 65.0, 15.0), (0.0, 1.0), 120.0, 55.0, density=-0.25)  # lungs
            for k in range(10):
                y = 110.0 - k * 22.0
                pts = [(side * (12.0 + 100.0 * math.sin(t)), y - 30.0 * (1 - math.cos(t)) - 0.1 * k * t)
                       for t in np.linspace(0.0, 2.2, 5)]
                for p, q in zip(pts[:-1], pts[1:]):
                    long_bone(layers.bone, frame, p, q, 4.5, 4.0, 4.5, e0=1.0, e1=1.0, density=0.6)
            long_bone(layers.bone, frame, (side * 10.0, 135.0), (side * 85.0, 150.0), 6.0, 5.0, 6.0,
                      density=0.8)  # clavicle
        for k in range(12):
            blob(layers.bone, frame, (0.0, 130.0 - k * 24.0), (0.0, 1.0), 10.0, 16.0, power=3.0, cortex=0.4)
    else:
        for _ in range(int(rng.integers(3, 14))):
            p = (float(rng.uniform(-150, 150)), float(rng.uniform(-150, 150)))
            if rng.random() < 0.5:
                q = (p[0] + float(rng.normal(0, 60)), p[1] + float(rng.normal(0, 60)))
                r = float(rng.uniform(2, 25))
                on_bone = rng.random() < 0.6
                long_bone(layers.bone if on_bone else layers.soft, frame if on_bone else soft_frame, p, q, r, r, r,
                          e0=1.0, e1=1.0, density=float(rng.uniform(0.2, 1.2)), cortex=float(rng.uniform(0, 0.8)))
            else:
                on_bone = rng.random() < 0.5
                blob(layers.bone if on_bone else layers.soft, frame if on_bone else soft_frame, p,
                     (float(rng.normal()), float(rng.normal())), float(rng.uniform(5, 90)),
                     float(rng.uniform(5, 60)), power=float(rng.uniform(1.5, 4.0)),
                     density=float(rng.uniform(0.2, 1.2)))
    return subtype, rotation


def _expose(rng: np.random.Generator, layers: Layers, scale: float, nuisance: bool) -> np.ndarray:
    """Thickness layers (pixels) -> transmitted-intensity image in [0, 1), bright bone."""
    mu_soft, mu_bone = 0.04, 0.5
    if nuisance:
        mu_soft *= float(rng.uniform(0.6, 1.5))
        mu_bone *= float(rng.uniform(0.7, 1.3))
    # Layers hold projected thickness in pixels; dividing by the scale gives millimetres. In place:
    # at 512 px each full-image pass costs a noticeable part of the ~20 ms budget.
    np.maximum(layers.soft, 0.0, out=layers.soft)  # a chest's lungs subtract soft tissue
    atten = layers.soft_full()
    atten *= np.float32(-mu_soft / scale)
    bone = layers.bone
    bone *= np.float32(mu_bone / scale)
    atten -= bone
    img = np.exp(atten, out=atten)
    np.subtract(np.float32(1.0), img, out=img)
    return _blur(img)


def _blur(img: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 separable blur (edges clamped): the detector's blur, and anti-aliasing for the
    drawn edges. Symmetric, so it does not shift the image against its boxes (or a mirrored hand).
    Each axis is two 2-tap sums, (a[i] + a[i+1]) then (b[i-1] + b[i]), to keep full-image passes few."""
    b = np.empty_like(img)
    np.add(img[:-1], img[1:], out=b[:-1])
    np.multiply(img[-1], 2.0, out=b[-1])
    c = np.empty_like(img)
    np.add(b[1:], b[:-1], out=c[1:])
    np.add(b[0], img[0] * np.float32(2.0), out=c[0])
    np.add(c[:, :-1], c[:, 1:], out=b[:, :-1])
    np.multiply(c[:, -1], 2.0, out=b[:, -1])
    np.add(b[:, 1:], b[:, :-1], out=img[:, 1:])
    np.add(b[:, 0], c[:, 0] * np.float32(2.0), out=img[:, 0])
    img *= np.float32(1.0 / 16.0)
    return img


_NOISE_BANK_SIZE = 1024


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    # A fixed, seeded field of unit Gaussian noise; each image takes a random window of it, which
    # costs a slice instead of drawing size**2 normals per image.
    return np.random.default_rng(0x5EED).standard_normal((_NOISE_BANK_SIZE, _NOISE_BANK_SIZE), dtype=np.float32)


def _unit_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    if size > _NOISE_BANK_SIZE // 2:
        return rng.standard_normal((size, size), dtype=np.float32)
    y, x = rng.integers(0, _NOISE_BANK_SIZE - size + 1, size=2)
    patch = _noise_bank()[y:y + size, x:x + size]
    flip = int(rng.integers(4))
    return patch[::-1] if flip == 1 else patch[:, ::-1] if flip == 2 else patch.T if flip == 3 else patch


def _display_lut(base: float, gamma: float, inverted: bool) -> np.ndarray:
    """Maps 4096 levels of transmitted intensity to the displayed value (fog, gamma, inversion)."""
    lut = np.linspace(0.0, 1.0, 4096, dtype=np.float32)
    lut = (base + (1.0 - base) * lut) ** np.float32(gamma)
    return (1.0 - lut if inverted else lut).astype(np.float32)


def _apply_lut(img: np.ndarray, lut: np.ndarray) -> np.ndarray:
    idx = (img * np.float32(len(lut) - 1)).astype(np.int32)
    return np.take(lut, idx, mode="clip")


@lru_cache(maxsize=16)
def _font(px: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(px, 6))


def _text_patch(text: str, px: int) -> np.ndarray:
    font = _font(px)
    left, top, right, bottom = font.getbbox(text)
    patch = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(patch).text((2 - left, 2 - top), text, fill=255, font=font)
    return np.asarray(patch, dtype=np.float32) / 255.0


def _stamp(img: np.ndarray, patch: np.ndarray, x: int, y: int, value: float, box: bool) -> None:
    h, w = patch.shape
    H, W = img.shape
    x, y = min(max(x, 0), max(W - w, 0)), min(max(y, 0), max(H - h, 0))
    region = img[y:y + h, x:x + w]
    p = patch[:region.shape[0], :region.shape[1]]
    if box:  # lead markers sit in a plastic holder: a faint square behind the letter
        region += 0.12 * (1.0 - region)
    np.maximum(region, value * p, out=region)


def _corner_spot(rng: np.random.Generator, size: int, pw: int, ph: int, avoid: list[list[float]]) -> tuple[int, int]:
    """A spot for a marker that keeps clear of the hands when it can."""
    best = (0, 0)
    for _ in range(6):
        x = int(rng.choice([rng.uniform(0.02, 0.2), rng.uniform(0.8, 0.98)]) * size - pw / 2)
        y = int(rng.choice([rng.uniform(0.02, 0.2), rng.uniform(0.8, 0.98)]) * size - ph / 2)
        best = (x, y)
        if not any(x < b[2] and x + pw > b[0] and y < b[3] and y + ph > b[1] for b in avoid):
            return best
    return best


_TEXTS = ("PA", "HAND", "L HAND PA", "BONE AGE", "STANDING", "AP", "CR", "DX", "12", "3", "RT", "LT", "X2")


def _nuisances(rng: np.random.Generator, img: np.ndarray, labels: dict, kind: str) -> np.ndarray:
    size = img.shape[0]
    boxes = labels["hand_boxes"]
    # Heel effect: intensity drifts across the film.
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    heel = float(rng.uniform(-0.08, 0.08))
    if rng.random() < 0.5:
        img *= 1.0 + heel * ramp[:, None]
    else:
        img *= 1.0 + heel * ramp[None, :]

    # Lead marker and burnt-in text: bright, high-contrast, often near the hand.
    if rng.random() < 0.75:
        letter = "R" if kind == "right" else ("L" if rng.random() < 0.95 else "R")
        if kind == "two_hands":
            letter = "L R" if rng.random() < 0.5 else "L"
        px = int(size * rng.uniform(0.04, 0.09))
        patch = _text_patch(letter, px)
        if rng.random() < 0.3:
            patch = np.asarray(Image.fromarray((patch * 255).astype(np.uint8)).rotate(
                float(rng.uniform(-30, 30)), expand=True), dtype=np.float32) / 255.0
        x, y = _corner_spot(rng, size, patch.shape[1], patch.shape[0], boxes)
        _stamp(img, patch, x, y, float(rng.uniform(0.9, 1.0)), True)
        labels["marker"] = letter
    if rng.random() < 0.4:
        text = " ".join(str(rng.choice(_TEXTS)) for _ in range(int(rng.integers(1, 3))))
        patch = _text_patch(text, int(size * rng.uniform(0.02, 0.04)))
        x, y = _corner_spot(rng, size, patch.shape[1], patch.shape[0], boxes)
        _stamp(img, patch, x, y, float(rng.uniform(0.7, 1.0)), False)

    # Collimation: the exposed field is a (slightly rotated) rectangle around the anatomy.
    if rng.random() < 0.6:
        cx, cy = size / 2 + rng.normal(0, 0.05) * size, size / 2 + rng.normal(0, 0.05) * size
        hw, hh = rng.uniform(0.32, 0.6) * size, rng.uniform(0.35, 0.6) * size
        if boxes:  # keep the hands inside the field, mostly
            cx = (min(b[0] for b in boxes) + max(b[2] for b in boxes)) / 2
            cy = (min(b[1] for b in boxes) + max(b[3] for b in boxes)) / 2
            hw = max(hw, (max(b[2] for b in boxes) - min(b[0] for b in boxes)) / 2 + 0.02 * size)
            hh = max(hh, (max(b[3] for b in boxes) - min(b[1] for b in boxes)) / 2 + 0.02 * size)
        a = math.radians(rng.uniform(-6, 6))
        c, s = math.cos(a), math.sin(a)
        corners = np.array([(cx + c * dx - s * dy, cy + s * dx + c * dy)
                            for dx, dy in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))])
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).polygon([tuple(c) for c in corners.tolist()], fill=1)
        inside = np.asarray(mask, dtype=bool)
        outside_level = float(rng.uniform(0.0, 0.08)) if rng.random() < 0.5 else float(rng.uniform(0.55, 0.95))
        # A dark (shuttered) border still shows a little scatter; a bright (unexposed) one does not.
        scatter = np.float32(0.1 if outside_level < 0.5 else 0.0)
        img = np.where(inside, img, scatter * img + np.float32(outside_level))
        labels["collimated"] = True

    # Some films were scanned or resized at a lower resolution than they are stored at.
    if rng.random() < 0.2:
        for _ in range(int(rng.integers(1, 3))):
            img = _blur(img)

    # Quantum and electronic noise, then fog, gamma and (sometimes) inversion through one LUT.
    img += np.float32(rng.uniform(0.003, 0.035)) * _unit_noise(rng, size)
    gamma = float(np.exp(rng.uniform(math.log(0.65), math.log(1.6))))
    labels["gamma"] = round(gamma, 4)
    labels["inverted"] = bool(rng.random() < 0.1)
    return _apply_lut(img, _display_lut(float(rng.uniform(0.0, 0.08)), gamma, labels["inverted"]))
