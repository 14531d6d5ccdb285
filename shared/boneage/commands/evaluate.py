"""``boneage evaluate DIR``: accuracy, interval coverage, bias and QC confusion on an RSNA-layout folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "evaluate a model on an RSNA-layout folder (labels.csv + images/): MAE, coverage, bias, QC"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, help="folder with labels.csv (id,boneage,male[,kind,...]) and PNG images")
    p.add_argument("--weights", type=Path, default=None, help="checkpoint (default: the committed demo weights)")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N rows only")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--robustness", action="store_true",
                   help="also MAE under rotation, mirroring, inversion, gamma, noise and an off-centre crop")
    p.add_argument("--robustness-n", type=int, default=200, help="left hands used for the robustness runs")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import torch

    from boneage.model.evaluation import evaluate_folder
    from boneage.model.pipeline import TwoStageAssessor
    from boneage.model.weights import load_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.dir.is_dir():
        print(f"error: {args.dir} is not a folder", file=sys.stderr)
        return 2
    try:
        assessor = TwoStageAssessor.from_checkpoint(load_checkpoint(args.weights))
        result = evaluate_folder(args.dir, assessor, limit=args.limit, batch=args.batch,
                                 robustness=args.robustness, robustness_n=args.robustness_n)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0
