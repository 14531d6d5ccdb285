"""What the benchmark's parts share: where the checkout and its interpreters are, the phantom set, and a percentile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boneage

PACKAGE_PARENT = Path(boneage.__file__).resolve().parents[1]     # shared/ in a checkout
ROOT = PACKAGE_PARENT.parent                                      # the checkout
PY = sys.executable
IPEX_PY = ROOT / ".venv-ipex" / "bin" / "python"
CONFIGS = ("clinical", "seed_equivalent", "demo")   # acceptance-critical first
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SLOW_AOTI_CONFIGS = ("seed_equivalent",)
PHANTOM_SEED = 2024


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a spawned worker or build: this package on the path, so the IPEX venv
    (which does not install it) runs the same code."""
    return {**os.environ, "PYTHONPATH": str(PACKAGE_PARENT), **(extra or {})}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def phantoms(n: int, size: int = 512) -> list[tuple[Any, dict[str, Any]]]:
    import numpy as np

    from boneage.phantom import render_sample

    rng = np.random.default_rng(PHANTOM_SEED)
    return [render_sample(rng, kind="left", size=size) for _ in range(n)]


def save_phantoms(n: int, path: Path) -> Path:
    import numpy as np

    samples = phantoms(n)
    np.savez(path, images=np.stack([img for img, _ in samples]),
             labels=np.array(json.dumps([{"boneage": float(lb["boneage"]), "male": bool(lb["male"])} for _, lb in samples])))
    return path


def load_phantoms(path: Path) -> list[tuple[Any, dict[str, Any]]]:
    import numpy as np

    with np.load(path) as data:
        return list(zip(data["images"], json.loads(str(data["labels"]))))


def run_bench_worker(args: list[str], key: str, *, timeout: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``python -m boneage.bench ARGS`` in a fresh process: its first JSON line carrying ``key``, less
    its ``event`` field, or ``{"error": <the tail of its output>}``."""
    proc = subprocess.run([PY, "-m", "boneage.bench", *args], capture_output=True, text=True, timeout=timeout,
                          env=child_env(env))
    for line in proc.stdout.splitlines():
        if line.startswith("{") and f'"{key}"' in line:
            msg = json.loads(line)
            msg.pop("event", None)
            return msg
    return {"error": (proc.stderr or proc.stdout)[-1500:]}
