"""``boneage phantom``: write a set of hand phantoms in the RSNA Bone Age layout.

``boneage phantom --out DIR --count N --seed S [--format png|dicom|both] [--size PX] [--mix ...]``
writes ``DIR/labels.csv`` and ``DIR/images/<id>.png`` (and/or ``DIR/dicom/<id>.dcm``). With
``--json`` it prints one JSON object per image (``"event": "image"``) and a final summary
(``"event": "summary"``); without it, a one-line summary. Bad arguments give a ``rejected`` line
with a reason code and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HELP = "Write procedural hand radiograph phantoms (RSNA layout: labels.csv + images/, optional DICOM)"


def _mix(text: str) -> dict[str, float]:
    """``left=0.7,right=0.1,...`` -> weights."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            mix[name.strip()] = float(value) if sep else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad mix weight {part!r}; expected kind=weight") from None
    return mix


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--count", type=int, required=True, metavar="N", help="number of images")
    parser.add_argument("--seed", type=int, required=True, metavar="S", help="set seed (same seed, same bytes)")
    parser.add_argument("--format", dest="fmt", choices=["png", "dicom", "both"], default="png")
    parser.add_argument("--size", type=int, default=1024, metavar="PX", help="image side in pixels (default 1024)")
    parser.add_argument("--mix", type=_mix, default=None, metavar="KIND=W,...",
                        help="kind weights, e.g. left=0.7,right=0.1,two_hands=0.06,non_hand=0.07,adult=0.07")
    parser.add_argument("--json", action="store_true", help="one JSON object per image, then a summary")


def run(args: argparse.Namespace) -> int:
    from boneage.errors import Rejection
    from boneage.phantom.dataset import generate_dataset

    kinds: Counter[str] = Counter()
    started = time.perf_counter()

    def on_sample(labels: dict[str, Any]) -> None:
        kinds[labels["kind"]] += 1
        if args.json:
            keep = ("id", "kind", "boneage", "male", "chronological_age_months", "hand_boxes", "rotation_deg",
                    "mirrored", "inverted", "subtype")
            print(json.dumps({"event": "image", **{k: labels[k] for k in keep}}), flush=False)

    try:
        out = generate_dataset(args.out, args.count, args.seed, fmt=args.fmt, size=args.size, mix=args.mix,
                               on_sample=on_sample)
    except Rejection as exc:
        if args.json:
            print(json.dumps({"event": "summary", "status": "rejected", **exc.as_dict()}))
        else:
            print(f"rejected: {exc.reason}: {exc.message}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    summary = {"event": "summary", "status": "completed", "out": str(out), "labels": str(out / "labels.csv"),
               "count": args.count, "seed": args.seed, "format": args.fmt, "size": args.size,
               "kinds": dict(sorted(kinds.items())), "seconds": round(seconds, 2)}
    if args.json:
        print(json.dumps(summary))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
        print(f"wrote {args.count} phantoms ({counts}) to {out} in {seconds:.1f} s")
    return 0
