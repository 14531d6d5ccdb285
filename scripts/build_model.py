"""Build the engine's artifacts (``make model``): one folder per backend and precision plus manifests.

    scripts/build_model.py --config demo --out build/model
    scripts/build_model.py --config clinical --random-weights --backends aoti,eager --precisions fp32

``demo`` uses the committed demo weights; other configs need ``--checkpoint`` or ``--random-weights``
(the benchmark's workloads). The IPEX backend is built only by an interpreter with torch 2.8 + IPEX
(``.venv-ipex``); elsewhere it is skipped with a note. A failed backend is reported and the others
still build, so one broken compiler never leaves the service without an artifact.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import time
from pathlib import Path

from boneage.engine import host
from boneage.engine.artifacts import retire_stale, up_to_date
from boneage.engine.build import INT8_BACKENDS, build_artifact
from boneage.engine.loader import ipex_version


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="demo")
    p.add_argument("--out", type=Path, default=Path("build/model"))
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: committed demo weights)")
    p.add_argument("--random-weights", action="store_true", help="seeded random weights (benchmark workloads)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backends", default="aoti,torchscript,eager,ipex")
    p.add_argument("--precisions", default="auto",
                   help="comma list, or auto: fp32, int8 where torchao is installed (AOTInductor only), and "
                        "bf16 where the host has native bf16 (AVX512-BF16)")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--force", action="store_true", help="rebuild artifacts that are already up to date")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    host.configure_torch()

    from boneage.engine import weights

    if args.random_weights:
        src = weights.random_weights(args.config, args.seed)
    else:
        src = weights.from_checkpoint(args.checkpoint)
        if src.config_name != args.config:
            print(f"note: checkpoint config is {src.config_name!r}, building that", file=sys.stderr)
    retire_stale(args.out, src.weights_sha256)
    have_ipex = ipex_version() is not None
    if args.precisions == "auto":
        auto = ["fp32"]
        if importlib.util.find_spec("torchao") is not None:
            auto.append("int8")
        if host.BF16_FLAGS <= host.effective_flags():
            auto.append("bf16")
        args.precisions = ",".join(auto)
    summary = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if backend == "ipex" and not have_ipex:
            summary.append({"artifact": "ipex", "skipped": "needs torch 2.8 + IPEX (make ipex-env; run with .venv-ipex)"})
            continue
        if backend != "ipex" and have_ipex:
            continue   # the IPEX venv builds only the IPEX artifacts; the main venv builds the rest
        for precision in [q.strip() for q in args.precisions.split(",") if q.strip()]:
            if precision == "int8" and backend not in INT8_BACKENDS:
                continue            # int8 is an AOTInductor artifact only (see boneage.engine.build)
            folder = args.out / f"{backend}-{precision}"
            if not args.force and up_to_date(folder, weights_sha256=src.weights_sha256,
                                             model_config=src.model_config, ipex=ipex_version()):
                summary.append({"artifact": folder.name, "up_to_date": True})
                continue
            t0 = time.perf_counter()
            try:
                m = build_artifact(src.stages, args.out, backend=backend, precision=precision,
                                   config_name=src.config_name, model_config=src.model_config,
                                   model_version=src.model_version, weights_sha256=src.weights_sha256,
                                   demo=src.demo, max_batch=args.max_batch)
            except Exception as exc:   # report and go on: the loader falls back past a missing artifact
                summary.append({"artifact": f"{backend}-{precision}", "error": f"{type(exc).__name__}: {exc}"[:500]})
                continue
            summary.append({"artifact": m.name, "seconds": round(time.perf_counter() - t0, 1),
                            "gflop_per_image": m.gflop_per_image["total"], "isa": m.isa})
    for row in summary:
        print(json.dumps(row))
    return 1 if all("error" in r or "skipped" in r for r in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
