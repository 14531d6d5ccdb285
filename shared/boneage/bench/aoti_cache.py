"""The AOTInductor artifacts of the big configs (``SLOW_AOTI_CONFIGS``), compiled by ``make bench``
within a time budget and cached across runs under ``build/cache/aoti/<key>/aoti-<precision>/``.

The key is a hash of everything that changes what the compiler produces (``key_inputs``): the
weights' sha256, the model config, the precision, torch (and torchao for int8) versions, the ISA
class Inductor vectorises for, the C++ compiler, Python, the manifest schema and the source of the
code that builds the graph (``boneage.engine.build``/``weights``, ``boneage.model``,
``boneage.compat.torch``). A run whose key has a complete entry (manifest written last, every file
with its recorded hash) reuses it; anything else is a miss.

On a miss ``decide`` either builds, with the rest of the budget as a hard timeout, or skips with
``"skipped": "budget"`` when nothing is left or when the last build of the same config, precision
and ISA class (``timings.json``) took longer than what is left. A build killed at the budget is
recorded the same way, with the seconds it had used, and those seconds go into ``timings.json`` as
a lower bound, so the next run with no more budget skips it at once rather than trying again. The cached folder is hard-linked into the
bench's artifact folder, so the loader and the workers read it like any other artifact.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import PACKAGE_PARENT, PY, ROOT, child_env

CACHE_ROOT = ROOT / "build" / "cache" / "aoti"
# Compile seconds a run may spend on cache misses of the big configs, all precisions together.
# seed_equivalent on the 2-vCPU AVX2 development host, nice 10: aoti-fp32 97 s, aoti-int8 1,021 s
# under a load of 6-7 (most of it PT2E calibration); both fit, once, and later runs hit the cache.
DEFAULT_BUDGET_S = 1500.0
# The source whose change changes the exported graph or how it is compiled (relative to shared/boneage).
CODE_PATHS = ("engine/build.py", "engine/weights.py", "engine/manifest.py", "compat/torch.py", "model")


@dataclass
class Budget:
    """Compile seconds for this run's cache misses; ``None`` total is no limit (``--build-aoti``)."""

    total_s: float | None
    spent_s: float = 0.0

    def remaining(self) -> float | None:
        return None if self.total_s is None else max(self.total_s - self.spent_s, 0.0)


@dataclass
class Decision:
    action: str                      # "hit", "build" or "skip"
    reason: str = ""
    timeout_s: float | None = None   # for "build": the rest of the budget
    details: dict[str, Any] = field(default_factory=dict)


def decide(cached: bool, budget: Budget, estimate_s: float | None) -> Decision:
    """What to do for one artifact: reuse it, build it (within what the budget has left), or skip it."""
    if cached:
        return Decision("hit")
    left = budget.remaining()
    if left is None:
        return Decision("build", "cache miss, no budget limit (--build-aoti)")
    if left <= 0:
        return Decision("skip", "cache miss, and this run only reuses the cache (--aoti-budget 0)" if not budget.total_s
                        else f"cache miss and the AOTInductor budget ({budget.total_s:.0f} s) is spent",
                        details={"budget_s": budget.total_s, "budget_left_s": 0.0})
    if estimate_s is not None and estimate_s >= left:
        return Decision("skip", f"cache miss; the last build here took (or was stopped at) {estimate_s:.0f} s, "
                                f"not less than the {left:.0f} s left of the {budget.total_s:.0f} s budget",
                        details={"budget_s": budget.total_s, "budget_left_s": round(left, 1),
                                 "estimate_s": estimate_s})
    return Decision("build", f"cache miss, building within the {left:.0f} s left", timeout_s=left)


def cache_key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:20]


def code_sha256(root: Path = PACKAGE_PARENT / "boneage") -> str:
    h = hashlib.sha256()
    for rel in CODE_PATHS:
        path = root / rel
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []:
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


@functools.cache
def _versions(python: Path | str) -> dict[str, Any]:
    """torch, torchao, Python and Inductor's vector ISA as the building interpreter sees them."""
    code = ("import json, platform, importlib.metadata as md, torch\n"
            "from torch._inductor import cpu_vec_isa\n"
            "try: ao = md.version('torchao')\nexcept md.PackageNotFoundError: ao = None\n"
            "print(json.dumps({'torch': torch.__version__, 'torchao': ao, 'python': platform.python_version(),"
            " 'vec_isa': str(cpu_vec_isa.pick_vec_isa())}))")
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or "none"
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return cxx
    return (out.splitlines() or [cxx])[0]


@functools.cache
def _weights(config: str, seed: int = 0) -> tuple[str, dict[str, Any]]:
    """(weights sha256, model config) as ``scripts/build_model.py --random-weights`` would build them."""
    from boneage.engine.weights import random_weights

    w = random_weights(config, seed)
    return w.weights_sha256, w.model_config


def key_inputs(config: str, precision: str, python: Path | str = PY, *,
               weights: tuple[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything a compiled AOTInductor artifact depends on (see the module docstring)."""
    from boneage.engine.manifest import SCHEMA_VERSION

    sha, model_config = weights or _weights(config)
    v = _versions(str(python))
    return {"config": config, "precision": precision, "weights_sha256": sha,
            "model_config": json.loads(json.dumps(model_config)), "torch": v["torch"],
            "torchao": v["torchao"] if precision == "int8" else None, "python": v["python"],
            "isa": v["vec_isa"], "machine": platform.machine(), "compiler": _compiler(),
            "manifest_schema": SCHEMA_VERSION, "code_sha256": code_sha256()}


def is_complete(folder: Path) -> bool:
    """A finished build: its manifest (written last) and every file with its recorded hash."""
    from boneage.engine.manifest import Manifest, ManifestError, sha256_file

    try:
        m = Manifest.read(folder)
    except ManifestError:
        return False
    return all((folder / f["path"]).is_file() and sha256_file(folder / f["path"]) == f["sha256"]
               for f in m.files.values())


def _built_from(folder: Path) -> str:
    from boneage.engine.manifest import Manifest

    return Manifest.read(folder).weights_sha256


def _timings(root: Path) -> dict[str, float]:
    try:
        return json.loads((root / "timings.json").read_text())
    except (OSError, ValueError):
        return {}


def timing_key(config: str, precision: str, isa: str) -> str:
    return f"{config}/aoti-{precision}/{isa}"


def link_into(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of ``src`` made of hard links (a plain copy across file systems)."""
    if dst.is_symlink() or dst.is_file():
        dst.unlink()
    elif dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in src.iterdir():
        try:
            os.link(f, dst / f.name)
        except OSError:
            shutil.copy2(f, dst / f.name)


def ensure(config: str, precision: str, out: Path, budget: Budget, python: Path | str = PY, *,
           root: Path = CACHE_ROOT, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The artifact ``out/aoti-<precision>`` from the cache, built into it now, or skipped: what
    happened, for the report (``cache_hit``, ``build_s``, ``key``; ``skipped`` and why)."""
    started = time.perf_counter()
    inputs = inputs or key_inputs(config, precision, python)
    key = cache_key(inputs)
    entry = root / key
    folder = entry / f"aoti-{precision}"
    timings = _timings(root)
    tkey = timing_key(config, precision, inputs["isa"])
    decision = decide(is_complete(folder), budget, timings.get(tkey))
    info: dict[str, Any] = {"key": key, "cache_dir": str(entry), "decision": decision.action}
    if decision.action == "hit":
        recorded = json.loads((entry / "build.json").read_text()) if (entry / "build.json").exists() else {}
        info.update(cache_hit=True, build_s=recorded.get("build_s"), built_at=recorded.get("built_at"))
    elif decision.action == "skip":
        info.update(cache_hit=False, skipped="budget", reason=decision.reason, **decision.details)
    else:
        shutil.rmtree(entry, ignore_errors=True)             # a partial build of this key, if any
        entry.mkdir(parents=True)
        (entry / "key.json").write_text(json.dumps(inputs, indent=1, sort_keys=True) + "\n")
        cmd = ["nice", "-n", "10", str(python), str(ROOT / "scripts" / "build_model.py"), "--config", config,
               "--out", str(entry), "--backends", "aoti", "--precisions", precision, "--random-weights"]
        rc, seconds, tail = _run(cmd, decision.timeout_s)
        budget.spent_s += seconds
        info.update(cache_hit=False, build_s=round(seconds, 1))
        if rc is None:
            info.update(skipped="budget", reason=f"the build ran into the budget after {seconds:.0f} s and was "
                                                 f"stopped ({budget.total_s:.0f} s in all)", budget_s=budget.total_s)
            shutil.rmtree(entry, ignore_errors=True)
            # At least this long: the next run with no more budget skips it at once instead of trying again.
            timings[tkey] = max(timings.get(tkey, 0.0), round(seconds, 1))
            (root / "timings.json").write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
        elif rc != 0 or not is_complete(folder):
            info.update(error=f"build failed (rc {rc}): {tail}")
        elif _built_from(folder) != inputs["weights_sha256"]:
            # The key promised these weights; a package of others must not be cached under it.
            info.update(error=f"built from weights {_built_from(folder)[:12]}, the key says {inputs['weights_sha256'][:12]}")
            shutil.rmtree(entry, ignore_errors=True)
        else:
            timings[tkey] = round(seconds, 1)
            (root / "timings.json").write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
            (entry / "build.json").write_text(json.dumps(
                {"build_s": round(seconds, 1), "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "load_average": os.getloadavg()}) + "\n")
    if is_complete(folder):
        link_into(folder, out / f"aoti-{precision}")
    elif (out / f"aoti-{precision}").exists():
        shutil.rmtree(out / f"aoti-{precision}")               # never measure an artifact of another key
    info["ensure_s"] = round(time.perf_counter() - started, 1)    # key, check, build if any, link
    return info


def _run(cmd: list[str], timeout: float | None) -> tuple[int | None, float, str]:
    """(return code, None when stopped at ``timeout``; seconds; output tail). The build's compiler
    workers are in its process group, which is killed as a whole."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env(),
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, time.perf_counter() - t0, (out or "")[-600:]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, time.perf_counter() - t0, ""
