"""Training data: RSNA-layout folders and phantoms, prepared once, augmented per batch on the fly.

Sources:
- an RSNA Bone Age folder as distributed: a CSV with ``id,boneage,male`` (column names matched
  case-insensitively; extra phantom columns such as ``kind``, ``inverted`` and ``hand_boxes`` are used
  when present) and PNGs named ``<id>.png`` in ``images/`` or any sub-folder. Real RSNA images have
  no hand boxes: their regressor crop is the whole image, and they do not train the detector.
- phantoms from ``boneage.phantom.render_sample``, which come with boxes and QC labels.

Prepared samples are stored as uint8 (memory: thousands of images fit in a few hundred MB):
detector inputs letterboxed to the detector size, regressor inputs as square crops with a wider
margin than inference uses, so rotation and scale augmentation never run out of pixels.
Augmentation is batched torch (affine grid_sample), seeded by a torch.Generator.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .configs import ModelConfig
from .preprocess import letterbox, square_crop

STORE_MARGIN = 1.6      # regressor crops are stored at this margin; inference uses cfg.regressor.crop_margin
MATURE_KINDS = {"adult"}


@dataclass
class Sample:
    image: np.ndarray                    # float32 [H, W] in [0, 1] as found (may be inverted / right hand)
    boneage: float | None
    male: bool | None
    kind: str = "left"                   # left | right | two_hands | non_hand | adult | unknown
    boxes: list[list[float]] = field(default_factory=list)   # source pixels; [] = unknown (RSNA) or none
    labels: list[int] = field(default_factory=list)          # 0 left_hand, 1 right_hand
    inverted: bool = False
    has_boxes: bool = True


# ---------------------------------------------------------------------------------------------- reading
def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def _bool(v: str) -> bool | None:
    v = v.strip().lower()
    if v in ("1", "true", "t", "yes", "m", "male"):
        return True
    if v in ("0", "false", "f", "no", "female"):
        return False
    return None


def _find_csv(root: Path) -> Path:
    for name in ("labels.csv", "boneage-training-dataset.csv", "train.csv"):
        if (root / name).exists():
            return root / name
    found = sorted(root.glob("*.csv"))
    if not found:
        raise FileNotFoundError(f"no labels CSV in {root}")
    return found[0]


def _image_index(root: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in (".png", ".jpg", ".jpeg") and p.stem not in index:
            index[p.stem] = p
    return index


def read_png(path: Path) -> np.ndarray:
    """Grey [0, 1] float32 from an 8- or 16-bit PNG/JPEG."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(im, dtype=np.float32)
            return a / (65535.0 if a.max() > 255 else 255.0)
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


# Column spellings seen in the RSNA 2017 files (training CSV vs. the validation/test CSVs).
_ALIASES = {"case_id": "id", "image_id": "id", "bone_age": "boneage", "bone_age_(months)": "boneage",
            "ground_truth_bone_age_(months)": "boneage"}


def rsna_rows(root: Path) -> list[dict[str, str]]:
    """CSV rows with lower-case keys; ``id``, ``boneage`` and ``male`` under those names (``sex`` M/F maps
    to ``male`` when there is no ``male`` column)."""
    rows = []
    with open(_find_csv(root), newline="") as fh:
        for raw in csv.DictReader(fh):
            row = {}
            for k, v in raw.items():
                if k is not None:
                    key = _norm(k)
                    row[_ALIASES.get(key, key)] = (v or "").strip()
            if "male" not in row and row.get("sex", "").upper() in ("M", "F"):
                row["male"] = "True" if row["sex"].upper() == "M" else "False"
            rows.append(row)
    return rows


def read_rsna(root: Path, limit: int | None = None) -> Iterator[tuple[dict[str, str], Sample]]:
    """Yield (row, sample) for each labelled image of an RSNA-layout folder."""
    root = Path(root)
    index = _image_index(root)
    for n, row in enumerate(rsna_rows(root)):
        if limit is not None and n >= limit:
            break
        rid = row.get("id", "").strip()
        path = index.get(rid)
        if path is None:
            continue
        yield row, sample_from_row(row, read_png(path))


def sample_from_row(row: dict[str, str], image: np.ndarray) -> Sample:
    kind = row.get("kind", "").strip() or "unknown"
    age = row.get("boneage", "").strip()
    boxes_raw = row.get("hand_boxes", "").strip()
    boxes = json.loads(boxes_raw) if boxes_raw else []
    labels = hand_labels(kind, len(boxes))
    return Sample(image=image, boneage=float(age) if age not in ("", "nan", "None") else None,
                  male=_bool(row.get("male", "")), kind=kind, boxes=boxes, labels=labels,
                  inverted=bool(_bool(row.get("inverted", "") or "0")), has_boxes=bool(boxes_raw))


def hand_labels(kind: str, n: int) -> list[int]:
    """Detector class per hand box (0 left_hand, 1 right_hand)."""
    if kind == "two_hands":
        # The phantom draws the mirrored (right) hand first, then the left one.
        return [1, 0][:n] + [0] * max(n - 2, 0)
    return [1 if kind == "right" else 0] * n


# Training-only mix entry: a single left hand in the last ``NEAR_MATURE_SPAN`` months of the standards,
# where the maturity decision has to tell a closing physis from a fused one (adults start past the end).
NEAR_MATURE = "near_mature"
NEAR_MATURE_SPAN = 36.0


def phantom_samples(count: int, seed: int, size: int, mix: dict[str, float]) -> Iterator[Sample]:
    from boneage.phantom import render_sample
    from boneage.phantom.maturity import MATURE_MONTHS

    rng = np.random.default_rng(seed)
    kinds, p = list(mix), np.array(list(mix.values()), dtype=np.float64)
    p /= p.sum()
    for _ in range(count):
        kind = str(rng.choice(kinds, p=p))
        if kind == NEAR_MATURE:
            male = bool(rng.random() < 0.5)
            top = MATURE_MONTHS[male]
            age = float(rng.uniform(top - NEAR_MATURE_SPAN, top - 0.5))
            image, lab = render_sample(rng, kind="left", size=size, male=male, bone_age_months=age)
        else:
            image, lab = render_sample(rng, kind=kind, size=size)
        yield phantom_sample(image, lab)


def phantom_sample(image: np.ndarray, lab: dict) -> Sample:
    kind = lab.get("kind", "left")
    boxes = [list(map(float, b)) for b in lab.get("hand_boxes") or []]
    labels = hand_labels(kind, len(boxes))
    return Sample(image=np.asarray(image, dtype=np.float32), boneage=lab.get("boneage"), male=lab.get("male"),
                  kind=kind, boxes=boxes, labels=labels, inverted=bool(lab.get("inverted", False)))


# ------------------------------------------------------------------------------------------- preparing
@dataclass
class Prepared:
    """Uint8 tensors ready for batched augmentation."""
    det_images: torch.Tensor             # [N, S, S]
    det_content: torch.Tensor            # [N, 4] letterbox content rectangle (x0, y0, x1, y1)
    det_boxes: list[torch.Tensor]        # per image [G, 4] in detector pixels
    det_labels: list[torch.Tensor]
    det_inverted: torch.Tensor           # [N]
    reg_crops: torch.Tensor              # [M, R, R], left hand, positive polarity
    reg_age: torch.Tensor                # [M] months (0 for mature)
    reg_male: torch.Tensor               # [M] 1/0 (0.5 = unknown)
    reg_mature: torch.Tensor             # [M]
    reg_kind: list[str]

    def save(self, path: Path) -> None:
        torch.save(self.__dict__, path)

    @classmethod
    def load(cls, path: Path) -> "Prepared":
        return cls(**torch.load(path, weights_only=False))

    @classmethod
    def concat(cls, parts: list["Prepared"]) -> "Prepared":
        return cls(*(torch.cat([getattr(p, f) for p in parts]) if isinstance(getattr(parts[0], f), torch.Tensor)
                     else sum((getattr(p, f) for p in parts), []) for f in cls.__dataclass_fields__))


def _u8(t: torch.Tensor) -> torch.Tensor:
    return (t.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def prepare(samples: Iterable[Sample], cfg: ModelConfig) -> Prepared:
    s = cfg.detector.image_size
    r = store_size(cfg)
    det_i, det_c, det_b, det_l, det_v = [], [], [], [], []
    reg_c, reg_a, reg_m, reg_t, reg_k = [], [], [], [], []
    for smp in samples:
        img = np.clip(smp.image, 0, 1)
        if smp.has_boxes:
            t, geo = letterbox(img, s)
            h, w = img.shape
            det_i.append(_u8(t[0]))
            det_c.append(torch.tensor(geo.to_detector([0, 0, w, h]), dtype=torch.float32))
            det_b.append(torch.tensor(np.array([geo.to_detector(b) for b in smp.boxes]).reshape(-1, 4),
                                      dtype=torch.float32))
            det_l.append(torch.tensor(smp.labels, dtype=torch.long))
            det_v.append(float(smp.inverted))
        if smp.kind in ("two_hands", "non_hand") or (smp.boneage is None and smp.kind not in MATURE_KINDS):
            continue
        # The regressor sees what the pipeline hands it: a positive, left hand.
        pos = 1.0 - img if smp.inverted else img
        box = smp.boxes[0] if smp.boxes else [0, 0, img.shape[1], img.shape[0]]
        if smp.labels and smp.labels[0] == 1:
            pos = pos[:, ::-1]
            box = [img.shape[1] - box[2], box[1], img.shape[1] - box[0], box[3]]
        reg_c.append(_u8(square_crop(pos, box, STORE_MARGIN, r)[0]))
        mature = smp.kind in MATURE_KINDS
        reg_a.append(0.0 if mature or smp.boneage is None else float(smp.boneage))
        reg_m.append(0.5 if smp.male is None else float(smp.male))
        reg_t.append(float(mature))
        reg_k.append(smp.kind)
    z = torch.zeros(0, s, s, dtype=torch.uint8)
    return Prepared(
        det_images=torch.stack(det_i) if det_i else z, det_content=torch.stack(det_c) if det_c else torch.zeros(0, 4),
        det_boxes=det_b, det_labels=det_l, det_inverted=torch.tensor(det_v),
        reg_crops=torch.stack(reg_c) if reg_c else torch.zeros(0, r, r, dtype=torch.uint8),
        reg_age=torch.tensor(reg_a), reg_male=torch.tensor(reg_m), reg_mature=torch.tensor(reg_t), reg_kind=reg_k)


def store_size(cfg: ModelConfig) -> int:
    return int(round(cfg.regressor.crop_size * STORE_MARGIN / cfg.regressor.crop_margin))


# ---------------------------------------------------------------------------------------- augmentation
def _affine_grid(n: int, angle: torch.Tensor, scale: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor,
                 flip: torch.Tensor, out: int) -> torch.Tensor:
    """Sampling grid: output pixel -> input pixel, in normalised coordinates (rotation about the centre)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    fx = torch.where(flip, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * scale * fx
    theta[:, 0, 1] = -sin * scale
    theta[:, 1, 0] = sin * scale * fx
    theta[:, 1, 1] = cos * scale
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    return F.affine_grid(theta, [n, 1, out, out], align_corners=False)


def _photometric(x: torch.Tensor, g: torch.Generator, noise_max: float = 0.06) -> torch.Tensor:
    n = x.shape[0]
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=g)  # noqa: E731
    gamma = torch.exp(u(math.log(0.5), math.log(2.0)))
    x = x.clamp(1e-4, 1) ** gamma
    x = x * u(0.75, 1.2) + u(-0.08, 0.08)
    blur = (torch.rand(n, 1, 1, 1, generator=g) < 0.2).float()
    x = blur * F.avg_pool2d(x, 3, 1, 1, count_include_pad=False) + (1 - blur) * x
    noisy = (torch.rand(n, 1, 1, 1, generator=g) < 0.5).float()
    x = x + noisy * u(0.0, noise_max) * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1)


# The detector's geometric augmentation. A film turned by 25 degrees arrives letterboxed 1.33x smaller
# (the turned film's bounding square), on top of the hand's own tilt on the film (phantoms: up to 32
# degrees); at +-30 degrees and at most 1.4x smaller, rotated infants' hands, the smallest, were the
# valid hands the detector lost under the rotation on development seed 13709 (2 of 55, both
# no_hand_found) and held-out seed 13919 (2 of 51; model card). Wider ranges cover those films.
DETECTOR_MAX_ROTATION_DEG = 45.0
DETECTOR_ZOOM = (0.85, 1.6)          # scale range; >1 zooms out


def augment_detector(p: Prepared, idx: torch.Tensor, g: torch.Generator, cfg: ModelConfig
                     ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    s = cfg.detector.image_size
    n = len(idx)
    x = p.det_images[idx].float().div(255).unsqueeze(1)
    inverted = p.det_inverted[idx].clone()
    flip_inv = torch.rand(n, generator=g) < 0.3
    # Invert inside the film only: the letterbox border stays black, as it is at inference.
    yy = torch.arange(s).view(1, s, 1).float() + 0.5
    xx = torch.arange(s).view(1, 1, s).float() + 0.5
    c = p.det_content[idx]
    inside = ((xx >= c[:, 0, None, None]) & (xx < c[:, 2, None, None]) &
              (yy >= c[:, 1, None, None]) & (yy < c[:, 3, None, None])).unsqueeze(1)
    x = torch.where(flip_inv.view(n, 1, 1, 1) & inside, 1 - x, x)
    inverted = torch.where(flip_inv, 1 - inverted, inverted)

    r = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
    plain = torch.rand(n, generator=g) < 0.15        # some samples stay geometrically untouched
    lim, (zoom_in, zoom_out) = DETECTOR_MAX_ROTATION_DEG, DETECTOR_ZOOM
    angle = torch.where(plain, 0.0, r(-lim, lim)) * math.pi / 180
    scale = torch.where(plain, 1.0, torch.exp(r(math.log(zoom_in), math.log(zoom_out))))   # >1 zooms out
    tx = torch.where(plain, 0.0, r(-0.25, 0.25))
    ty = torch.where(plain, 0.0, r(-0.25, 0.25))
    flip = torch.rand(n, generator=g) < 0.5
    grid = _affine_grid(n, angle, scale, tx, ty, flip, s)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = _photometric(x, g)

    boxes, labels = [], []
    for i, k in enumerate(idx.tolist()):
        b, lab = p.det_boxes[k].clone(), p.det_labels[k].clone()
        if len(b):
            # Input pixel -> output pixel is the inverse of the sampling map; boxes are treated as the
            # ellipses they enclose so rotation does not inflate them.
            cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
            hw, hh = (b[:, 2] - b[:, 0]) / 2, (b[:, 3] - b[:, 1]) / 2
            u, v = cx / s * 2 - 1 - tx[i], cy / s * 2 - 1 - ty[i]
            ca, sa = math.cos(angle[i]), math.sin(angle[i])
            # inverse of [[c*sc*f, -s*sc], [s*sc*f, c*sc]]
            sc, f = float(scale[i]), (-1.0 if flip[i] else 1.0)
            ox = (ca * u + sa * v) / (sc * f)
            oy = (-sa * u + ca * v) / sc
            ncx, ncy = (ox + 1) * s / 2, (oy + 1) * s / 2
            ehw = torch.sqrt((hw * ca) ** 2 + (hh * sa) ** 2) / sc
            ehh = torch.sqrt((hw * sa) ** 2 + (hh * ca) ** 2) / sc
            nb = torch.stack([ncx - ehw, ncy - ehh, ncx + ehw, ncy + ehh], 1)
            area0 = (nb[:, 2] - nb[:, 0]) * (nb[:, 3] - nb[:, 1])
            nb = nb.clamp(0, s)
            keep = (nb[:, 2] - nb[:, 0]) * (nb[:, 3] - nb[:, 1]) > 0.5 * area0
            b = nb[keep]
            lab = lab[keep]
            if flip[i]:
                lab = 1 - lab
        boxes.append(b)
        labels.append(lab)
    return x, boxes, labels, inverted


def augment_regressor(p: Prepared, idx: torch.Tensor, g: torch.Generator, cfg: ModelConfig) -> torch.Tensor:
    n = len(idx)
    out = cfg.regressor.crop_size
    x = p.reg_crops[idx].float().div(255).unsqueeze(1)
    r = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
    plain = torch.rand(n, generator=g) < 0.15
    base = cfg.regressor.crop_margin / STORE_MARGIN
    angle = torch.where(plain, 0.0, r(-25, 25)) * math.pi / 180
    scale = base * torch.where(plain, 1.0, r(0.9, 1.12))
    tx = torch.where(plain, 0.0, r(-0.06, 0.06))
    ty = torch.where(plain, 0.0, r(-0.06, 0.06))
    flip = torch.rand(n, generator=g) < 0.1
    x = F.grid_sample(x, _affine_grid(n, angle, scale, tx, ty, flip, out), mode="bilinear",
                      padding_mode="zeros", align_corners=False)
    return _photometric(x, g, noise_max=0.04)
