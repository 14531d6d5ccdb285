"""One artifact in a fresh process: cold start, latency, throughput, accuracy on phantoms, peak memory.

``worker`` runs in the child (``python -m boneage.bench --worker ...``) and prints JSON lines;
``run_worker`` spawns it and reads them, cold start being the parent's clock from spawn to the
child's first result.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from .common import child_env, load_phantoms, pct


def worker(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    import torch

    from boneage.engine import load_engine

    phantoms = load_phantoms(args.phantom_file)   # rendered by the parent: test data, not start-up work
    engine = load_engine(args.artifacts, backend=args.artifact)
    engine.assessor.assess(phantoms[0][0], "F")
    print(json.dumps({"event": "first_result", "in_process_s": round(time.perf_counter() - t_start, 3)}), flush=True)
    if args.cold_only:
        return 0
    m = engine.manifest
    got = f"{engine.backend}-{engine.precision}"
    shapes = m["input_shapes"]

    def inputs(stage: str, batch: int) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(1)
        out = []
        for shape in shapes[stage]:
            if len(shape) == 4:
                out.append(torch.rand([batch, *shape[1:]], generator=g))
            else:                                   # sex one-hot: unknown
                t = torch.zeros([batch, *shape[1:]])
                t[:, -1] = 1.0
                out.append(t)
        return tuple(out)

    def once(batch: int) -> float:
        det_in, reg_in = inputs("detector", batch), inputs("regressor", batch)
        t0 = time.perf_counter()
        engine.detector_fn(*det_in)
        engine.regressor_fn(*reg_in)
        return time.perf_counter() - t0

    once(1)
    lat = [once(1) * 1000 for _ in range(args.repeats)]
    result: dict[str, Any] = {"artifact_loaded": got, "fallbacks": engine.fallbacks,
                              "p50_ms": round(statistics.median(lat), 1), "p90_ms": round(pct(lat, 0.9), 1),
                              "latencies_ms": [round(x, 1) for x in lat], "threads": engine.threads,
                              "init_ms": engine.init_ms}
    for batch in (4, 8):
        # One timed run per batch size (the first at a new shape also builds its oneDNN primitives,
        # which understates throughput slightly); more would not fit the 20-minute budget on 2 vCPUs.
        result[f"throughput_b{batch}_img_s"] = round(batch / once(batch), 2)
    # Accuracy: regressor output on phantom crops (any weights) and full assessments (trained weights).
    from boneage.model.regressor import sex_onehot

    # The whole film resized to each image input's shape (crop, and the wrist patch where there is one).
    sizes = [tuple(shape[2:]) for shape in shapes["regressor"] if len(shape) == 4]
    ages, sigmas, mature, assessed, assessed_mature = [], [], [], [], []
    for img, labels in phantoms:
        x = [torch.nn.functional.interpolate(torch.from_numpy(img)[None, None], size=hw, mode="area") for hw in sizes]
        sex = "M" if labels["male"] else "F"
        age, sigma, _, mature_logit = engine.regressor_fn(x[0], sex_onehot([sex]), *x[1:])[:4]
        ages.append(float(age[0]))
        sigmas.append(float(sigma[0]))
        mature.append(float(mature_logit[0]))      # the wrist stage's logit where the config has one
        out = engine.assessor.assess(img, sex)
        assessed.append(out.bone_age_months)
        assessed_mature.append(out.qc.get("mature_probability"))     # None: QC stopped before the regressor
    result["regressor_ages"] = ages
    result["regressor_sigmas"] = sigmas
    result["regressor_mature_logits"] = mature
    result["assessed_ages"] = assessed
    result["assessed_mature_probabilities"] = assessed_mature
    result["labels"] = [float(lb["boneage"]) for _, lb in phantoms]
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps({"event": "result", **result}), flush=True)
    return 0


def peak_rss_mb() -> float:
    """This process's peak resident memory since exec (VmHWM). getrusage's ru_maxrss is not: on Linux
    a child keeps the parent's high-water mark across fork + exec, which floored every worker at the
    bench driver's own ~455 MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


COLD_STARTS = 3        # a single cold start on a shared VM moved by a second between runs: report the median


def run_worker(python: Path | str, artifacts: Path, artifact: str, *, repeats: int, phantom_file: Path,
               env: dict[str, str] | None = None, timeout: float = 900) -> dict[str, Any]:
    """Spawn a worker; cold start = spawn -> its first_result line (the parent's clock), the median of
    ``COLD_STARTS`` fresh processes (the extra ones stop at their first result)."""
    out = _spawn(python, artifacts, artifact, repeats=repeats, phantom_file=phantom_file, env=env, timeout=timeout)
    if "cold_start_s" in out and "error" not in out:
        samples = [out["cold_start_s"]]
        for _ in range(COLD_STARTS - 1):
            extra = _spawn(python, artifacts, artifact, repeats=repeats, phantom_file=phantom_file, env=env,
                           timeout=timeout, cold_only=True)
            if "cold_start_s" in extra:
                samples.append(extra["cold_start_s"])
        out["cold_start_samples_s"] = samples
        out["cold_start_s"] = round(statistics.median(samples), 2)
    return out


def import_torch_s(python: Path | str, env: dict[str, str] | None = None, runs: int = COLD_STARTS) -> dict[str, Any]:
    """A bare ``import torch`` in fresh processes (spawn -> exit on the parent's clock, like a cold
    start), median of ``runs``: the floor a cold start is reported against, measured in the same run."""
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([str(python), "-c", "import torch"], env=child_env(env), check=True, capture_output=True,
                       timeout=600)
        samples.append(round(time.perf_counter() - t0, 2))
    return {"import_torch_s": round(statistics.median(samples), 2), "import_torch_samples_s": samples}


def _spawn(python: Path | str, artifacts: Path, artifact: str, *, repeats: int, phantom_file: Path,
           env: dict[str, str] | None, timeout: float, cold_only: bool = False) -> dict[str, Any]:
    cmd = [str(python), "-m", "boneage.bench", "--worker", "--artifacts", str(artifacts),
           "--artifact", artifact, "--repeats", str(repeats), "--phantom-file", str(phantom_file)]
    if cold_only:
        cmd.append("--cold-only")
    full_env = child_env(env)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    out: dict[str, Any] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if msg.get("event") == "first_result":
            out["cold_start_s"] = round(time.perf_counter() - t0, 2)
        elif msg.get("event") == "result":
            out.update({k: v for k, v in msg.items() if k != "event"})
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if proc.returncode != 0 or ("p50_ms" not in out and not cold_only):
        out["error"] = (err or "")[-1500:]
    return out
