"""The benchmark's artifacts, built with ``scripts/build_model.py`` where missing and cached under
``build/bench/model`` while their weights, architecture and torch version match."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from .common import PACKAGE_PARENT, PY, ROOT, child_env


def _demo_weights_sha256() -> str | None:
    from boneage.model.weights import load_checkpoint

    try:
        return load_checkpoint().sha256
    except FileNotFoundError:
        return None


def _config_dict(config: str) -> dict[str, Any]:
    from boneage.model.configs import CONFIGS

    return json.loads(json.dumps(CONFIGS[config].as_dict()))


def _torch_version(python: Path | str) -> str:
    if str(python) == PY:
        import torch

        return str(torch.__version__)
    proc = subprocess.run([str(python), "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    return proc.stdout.strip()


def ensure_artifacts(config: str, out: Path, backends: list[tuple[str, str]], python: Path | str = PY,
                     log: list[str] | None = None) -> dict[str, float]:
    """Build missing artifacts; returns build seconds per artifact built now."""
    from boneage.engine.manifest import Manifest, ManifestError

    built: dict[str, float] = {}
    for backend, precision in backends:
        folder = out / f"{backend}-{precision}"
        try:
            cached = Manifest.read(folder)
            # Cached (build_model writes the manifest last) unless the demo weights changed since (or
            # arrived after a random-weights build), or the config's architecture changed, or torch did.
            if config == "demo":
                fresh = cached.weights_sha256 == _demo_weights_sha256()
            else:
                fresh = cached.model_config == _config_dict(config)
            if fresh and cached.torch_version == _torch_version(python):
                continue
        except ManifestError:
            pass
        cmd = [str(python), str(ROOT / "scripts" / "build_model.py"), "--config", config, "--out", str(out),
               "--backends", backend, "--precisions", precision]
        if config != "demo" or not (PACKAGE_PARENT / "boneage/weights/demo.pt").exists():
            cmd.append("--random-weights")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
        built[f"{backend}-{precision}"] = round(time.perf_counter() - t0, 1)
        if log is not None and proc.returncode != 0:
            log.append(f"{config} {backend}-{precision}: build failed: {proc.stdout[-300:]} {proc.stderr[-300:]}")
    return built
