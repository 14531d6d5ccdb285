"""``boneage bench``: the inference benchmark (``boneage.bench``, what ``make bench`` runs), summarised.

The benchmark builds artifacts with the repository's ``scripts/build_model.py`` and drives the local
AWS emulator (``boneage.devstack``, the ``dev`` extra), so it runs from a checkout; this command runs it
and prints what it wrote. With ``--existing`` it only reads a report an earlier run left. ``--json``
prints one JSON object per line: one per config (the headline keys our checks use) and one for decoding.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

HELP = "run the inference benchmark (latency, throughput, cold start, memory, efficiency, accuracy) and summarise it"

HEADLINE = ("gflop_per_image", "eager_fp32_p50_ms", "best_p50_ms", "best_backend", "speedup_vs_eager",
            "compute_efficiency", "cold_start_s", "peak_rss_mb", "e2e_p50_ms", "e2e_p50_ms_avx2")


def _repo_root() -> Path | None:
    """The checkout this package runs from (``shared/boneage`` -> the root), if it has the scripts."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "scripts" / "build_model.py").is_file() else None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="report folder (default: build/bench in the checkout)")
    p.add_argument("--configs", default=None, help="comma list of demo, clinical, seed_equivalent (default: all)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per artifact")
    p.add_argument("--existing", action="store_true", help="do not run: summarise the report already in --out")
    p.add_argument("--json", action="store_true", help="one JSON object per line")


def summary_lines(report: dict[str, Any]) -> list[dict[str, Any]]:
    lines = []
    for config in report.get("configs", []):
        c = report.get(config) or {}
        keys = HEADLINE if config == "clinical" else HEADLINE[:8]     # end to end is measured for clinical
        lines.append({"config": config, **{k: c.get(k) for k in keys}})
    decode = report.get("decode") or {}
    if decode.get("formats"):
        lines.append({"decode": {name: {"cpu_median_ms": f.get("cpu_median_ms"), "goal_ms": f.get("goal_ms"),
                                        "meets_goal": f.get("meets_goal")}
                                 for name, f in decode["formats"].items()}})
    return lines


def run(args: argparse.Namespace) -> int:
    root = _repo_root()
    out = args.out or (root / "build" / "bench" if root else None)
    if out is None:
        print("error: the benchmark runs from a repository checkout (scripts/build_model.py); give --out "
              "with --existing to read a report", file=sys.stderr)
        return 2
    if not args.existing:
        if root is None:
            print("error: scripts/build_model.py not found: run from a repository checkout", file=sys.stderr)
            return 2
        from boneage.bench.driver import main as bench_main

        argv = ["--out", str(out)]
        if args.configs:
            argv += ["--configs", args.configs]
        if args.repeats:
            argv += ["--repeats", str(args.repeats)]
        # The benchmark's progress goes to stderr so stdout stays one JSON object per line.
        with contextlib.redirect_stdout(sys.stderr):
            code = bench_main(argv)
        if code != 0:
            print(f"error: the benchmark exited with {code}", file=sys.stderr)
            return code
    try:
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: no readable report in {out}: {type(exc).__name__}", file=sys.stderr)
        return 2
    for line in summary_lines(report):
        print(json.dumps(line) if args.json else "  ".join(f"{k}={v}" for k, v in line.items()))
    return 0
