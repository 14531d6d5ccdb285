"""``boneage train``: train the two-stage model on RSNA-layout folders and/or generated phantoms."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "train the hand detector and bone age regressor (RSNA layout folders and/or phantoms)"


from boneage.commands.phantom import _mix


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="demo", help="model size: demo | clinical | seed_equivalent")
    p.add_argument("--out", required=True, type=Path, help="output folder (model.pt, last.pt, summary.json)")
    p.add_argument("--data", action="append", type=Path, default=[],
                   help="RSNA-layout folder (CSV id,boneage,male + PNGs); repeatable")
    p.add_argument("--phantoms", type=int, default=0, help="render N phantoms for training")
    p.add_argument("--phantom-size", type=int, default=512, help="phantom image side in pixels")
    p.add_argument("--phantom-mix", type=_mix, default=None, metavar="KIND=W,...",
                   help="kinds of the rendered phantoms (default left=0.5,right=0.15,two_hands=0.1,"
                        "non_hand=0.1,adult=0.15); e.g. more non_hand for the detector, more adult for maturity; "
                        "near_mature: a left hand in the standards' last three years")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--init", type=Path, default=None, help="start from this checkpoint (fine-tune)")
    p.add_argument("--cache", action="append", type=Path, default=[],
                   help="prepared-data cache file; loaded when all given exist, else the first is written")
    p.add_argument("--prepare-only", action="store_true", help="render/prepare data into --cache and stop")
    p.add_argument("--stage", choices=["both", "detector", "regressor", "wrist"], default="both",
                   help="wrist: train only the wrist maturity stage of --init on the --data folders' single "
                        "hands and adults, with patches cut by the init checkpoint's own assessor")
    p.add_argument("--wrist-steps", type=int, default=400, help="--stage wrist: at most this many steps")
    p.add_argument("--wrist-copies", type=int, default=2,
                   help="--stage wrist: randomly perturbed copies of each film besides the clean one")
    p.add_argument("--wrist-rotation", type=float, default=30.0, metavar="DEG",
                   help="--stage wrist: rotated copies turn the film by up to this many degrees either way")
    p.add_argument("--wrist-equalise", action=argparse.BooleanOptionalAction, default=None,
                   help="--stage wrist: the wrist stage reads each pixel's rank within its patch (gamma- and "
                        "exposure-proof; opt-in, see the model card); default: as in --init (the config's "
                        "for an init without one)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: forward passes under bfloat16 autocast (weights and losses stay fp32); about 2-4x "
                        "faster on a CPU with AMX-BF16, slower where bf16 is emulated")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this long, then calibrate and save")
    p.add_argument("--combine", nargs=2, type=Path, metavar=("DETECTOR_CKPT", "REGRESSOR_CKPT"),
                   help="write OUT/model.pt from the detector of one run and the regressor of another")
    p.add_argument("--calibrate", type=Path, default=None, metavar="DIR",
                   help="with --init: fit the mean correction and 90 %% interval scale on this RSNA-layout "
                        "calibration folder through the full pipeline, and the maturity and detector score "
                        "thresholds when it holds adult and non-hand films; write OUT/model.pt")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run(args: argparse.Namespace) -> int:
    from boneage.errors import Rejection
    from boneage.model.configs import CONFIGS
    from boneage.model.training import TrainOptions, train

    if args.config not in CONFIGS:
        print(f"unknown config {args.config!r}; choose from {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            print("--device cuda asked for, but CUDA is not available", file=sys.stderr)
            return 2
    if args.combine:
        from boneage.model.training import combine
        version = combine(args.combine[0], args.combine[1], args.out / "model.pt")
        print(json.dumps({"model_version": version, "checkpoint": str(args.out / "model.pt")}))
        return 0
    if args.calibrate:
        if args.init is None:
            print("--calibrate needs --init CHECKPOINT", file=sys.stderr)
            return 2
        from boneage.model.training import calibrate_checkpoint
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        try:
            summary = calibrate_checkpoint(args.init, args.calibrate, args.out / "model.pt")
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(summary))
        return 0
    if args.stage == "wrist":
        return _train_wrist(args)
    stages = ("detector", "regressor") if args.stage == "both" else (args.stage,)
    mix = {"phantom_mix": args.phantom_mix} if args.phantom_mix else {}
    opts = TrainOptions(out=args.out, data=list(args.data), phantoms=args.phantoms, phantom_size=args.phantom_size,
                        epochs=args.epochs, seed=args.seed, device=args.device, batch=args.batch, lr=args.lr,
                        threads=args.threads, init=args.init, cache=list(args.cache),
                        prepare_only=args.prepare_only, stages=stages, max_minutes=args.max_minutes,
                        precision=args.precision, **mix)
    try:
        summary = train(CONFIGS[args.config], opts, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (ValueError, FileNotFoundError, Rejection) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return 0


def _train_wrist(args: argparse.Namespace) -> int:
    from boneage.model.wrist_training import WristOptions, train_wrist

    if args.init is None or not args.data:
        print("--stage wrist needs --init CHECKPOINT and at least one --data folder", file=sys.stderr)
        return 2
    opts = WristOptions(init=args.init, out=args.out, data=list(args.data), seed=args.seed, copies=args.wrist_copies,
                        steps=args.wrist_steps, max_minutes=args.max_minutes, batch=args.batch, lr=args.lr,
                        threads=args.threads, max_rotation_deg=args.wrist_rotation,
                        equalise=args.wrist_equalise, precision=args.precision)
    try:
        summary = train_wrist(opts, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return 0
