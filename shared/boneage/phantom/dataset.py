"""Write phantom sets in the RSNA Bone Age layout, with optional DICOM copies of each image.

Layout (as the RSNA 2017 challenge distributed it, plus our own columns):
``DIR/labels.csv`` (``id,boneage,male`` first, then kind, sex, chronological age, boxes, nuisances),
``DIR/images/<id>.png`` (8-bit grey) and, with ``fmt`` "dicom" or "both", ``DIR/dicom/<id>.dcm``
(Part 10, CR or DX, 12-bit, MONOCHROME2 or MONOCHROME1, with sex, birth and study dates, pixel
spacing, laterality and UIDs). Sample ``i`` of seed ``s`` is drawn from its own generator
``default_rng([s, i])``, so sets are reproducible byte for byte and a larger count extends a
smaller one. Patient names and IDs are synthetic ("PHANTOM^..."); nothing identifies a person.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from boneage.errors import Rejection
from boneage.phantom.dicom import write_dicom
from boneage.phantom.render import INVALID_REQUEST, KINDS, render_sample

FORMATS = ("png", "dicom", "both")

# Share of each kind in a default set: mostly single left hands (what the regressor learns from),
# with enough of every negative for the detector's quality control to learn from.
DEFAULT_MIX: dict[str, float] = {"left": 0.72, "right": 0.08, "two_hands": 0.06, "non_hand": 0.07, "adult": 0.07}

COLUMNS = ("id", "boneage", "male", "kind", "sex", "chronological_age_months", "subtype", "n_hands",
           "hand_boxes", "wrist_boxes", "rotation_deg", "mirrored", "inverted", "gamma", "marker",
           "pixel_spacing_mm", "size", "study_date", "birth_date", "modality", "photometric", "collimated")

_DAYS_PER_MONTH = 365.25 / 12.0
_FIRST_STUDY = dt.date(2016, 1, 1)
_STUDY_SPAN_DAYS = 3650


def _validate(count: int, fmt: str, size: int, mix: Mapping[str, float] | None) -> dict[str, float]:
    if fmt not in FORMATS:
        raise Rejection(INVALID_REQUEST, f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if int(count) < 0:
        raise Rejection(INVALID_REQUEST, f"count must be >= 0, got {count}")
    if not 32 <= int(size) <= 8192:
        raise Rejection(INVALID_REQUEST, f"size must be 32..8192 pixels, got {size}")
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = sorted(set(mix) - set(KINDS))
    if unknown:
        raise Rejection(INVALID_REQUEST, f"unknown kinds in mix: {', '.join(unknown)}; expected {', '.join(KINDS)}")
    if any(not np.isfinite(v) or v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise Rejection(INVALID_REQUEST, "mix weights must be finite, non-negative and not all zero")
    return mix


def sample_record(seed: int, index: int, *, size: int, mix: Mapping[str, float]) -> tuple[np.ndarray, dict[str, Any]]:
    """Sample ``index`` of set ``seed``: the image and its full label row (dates and DICOM choices too)."""
    rng = np.random.default_rng([int(seed), int(index)])
    kinds = [k for k in KINDS if mix.get(k, 0.0) > 0]
    weights = np.array([mix[k] for k in kinds], dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    img, labels = render_sample(rng, kind=kind, size=size)
    # Dates: a study day in 2016-2025, the birth date a whole number of days before it. The label
    # age is recomputed from those days so it matches what a reader derives from the DICOM dates.
    study = _FIRST_STUDY + dt.timedelta(days=int(rng.integers(_STUDY_SPAN_DAYS)))
    days = int(round(labels["chronological_age_months"] * _DAYS_PER_MONTH))
    birth = study - dt.timedelta(days=days)
    labels["chronological_age_months"] = round(days / _DAYS_PER_MONTH, 3)
    labels.update(
        id=int(index) + 1, sex="M" if labels["male"] else "F", n_hands=len(labels["hand_boxes"]), size=int(size),
        study_date=study.strftime("%Y%m%d"), birth_date=birth.strftime("%Y%m%d"),
        # CR has no Image Laterality for "both" or "unknown": two-hand and non-hand films are DX.
        modality="DX" if rng.random() < 0.6 or kind in ("two_hands", "non_hand") else "CR",
        photometric="MONOCHROME1" if rng.random() < 0.2 else "MONOCHROME2",
        study_time=f"{int(rng.integers(7, 19)):02d}{int(rng.integers(60)):02d}{int(rng.integers(60)):02d}",
    )
    return img, labels


def _csv_row(labels: Mapping[str, Any]) -> dict[str, str]:
    row = {}
    for col in COLUMNS:
        value = labels.get(col, "")
        if col in ("hand_boxes", "wrist_boxes"):
            value = json.dumps(value, separators=(",", ":"))
        row[col] = str(value)
    return row


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def write_png(path: Path, img: np.ndarray) -> None:
    # Noisy radiographs barely compress: level 1 is 3x faster than the default 6 for ~12 % more bytes.
    Image.fromarray(to_uint8(img)).save(path, format="PNG", compress_level=1)


def generate_dataset(out_dir: str | Path, count: int, seed: int, fmt: str = "png", size: int = 1024,
                     mix: Mapping[str, float] | None = None, *,
                     on_sample: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Write ``count`` phantoms of set ``seed`` under ``out_dir`` in the RSNA layout; returns ``out_dir``.

    ``mix`` weights the kinds (default ``DEFAULT_MIX``). PNGs are always written with "png" and
    "both", DICOM files with "dicom" and "both". ``labels.csv`` is written last, so a set that has
    one is complete. ``on_sample`` gets each label row as it is written (progress reporting).
    """
    mix = _validate(count, fmt, size, mix)
    out = Path(out_dir)
    images, dicoms = out / "images", out / "dicom"
    if fmt in ("png", "both"):
        images.mkdir(parents=True, exist_ok=True)
    if fmt in ("dicom", "both"):
        dicoms.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(int(count)):
        img, labels = sample_record(seed, i, size=int(size), mix=mix)
        if fmt in ("png", "both"):
            write_png(images / f"{labels['id']}.png", img)
        if fmt in ("dicom", "both"):
            write_dicom(dicoms / f"{labels['id']}.dcm", img, labels, seed=int(seed))
        rows.append(_csv_row(labels))
        if on_sample is not None:
            on_sample(labels)
    tmp = out / "labels.csv.tmp"
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out / "labels.csv")
    return out
