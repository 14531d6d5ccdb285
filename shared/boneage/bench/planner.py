"""What to measure on this host: the peak probes, and which (interpreter, backend, precision) can win,
with the reason for each combination skipped."""

from __future__ import annotations

from .common import IPEX_PY, PY


def probe_peaks() -> dict[str, dict[str, float]]:
    from boneage.engine.peak import probe

    return {"fp32": probe("fp32", repeats=40, min_seconds=2.0), "bf16": probe("bf16", repeats=3, min_seconds=0.5),
            "int8": probe("int8", repeats=40, min_seconds=2.0)}


def best_probe(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    best = {k: max(a.get(k, 0.0), b.get(k, 0.0)) for k in {**a, **b}}
    return best


def plan(config: str, peaks: dict[str, dict[str, float]], have_ipex: bool) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(python, backend, precision) to measure, and the skipped combinations with reasons."""
    bf16_can_win = peaks["bf16"]["peak"] > peaks["fp32"]["peak"]
    todo: list[tuple[str, str, str]] = [(PY, "eager", "fp32"), (PY, "torchscript", "fp32"), (PY, "aoti", "fp32")]
    skipped: list[str] = []
    if bf16_can_win:
        todo += [(PY, "eager", "bf16"), (PY, "torchscript", "bf16"), (PY, "aoti", "bf16")]
    elif config == "demo":
        # Slow here, but the demo weights are the trained ones: this is where the MAE change means something.
        todo.append((PY, "eager", "bf16"))
        skipped.append(f"{config}: compiled bf16 skipped: measured bf16 peak {peaks['bf16']['peak']} GFLOP/s < "
                       f"fp32 peak {peaks['fp32']['peak']} GFLOP/s (no AVX512-BF16/AMX: bf16 is emulated); "
                       "eager-bf16 measured for the accuracy delta")
    else:
        skipped.append(f"{config}: torchscript-bf16, aoti-bf16, ipex-bf16 skipped: measured bf16 peak "
                       f"{peaks['bf16']['peak']} GFLOP/s < fp32 peak {peaks['fp32']['peak']} GFLOP/s on this host "
                       "(no AVX512-BF16/AMX: bf16 is emulated, a random-weight bf16 run would take minutes per image)")
    if peaks.get("int8", {}).get("peak"):
        todo.append((PY, "aoti", "int8"))
    else:
        skipped.append(f"{config}: aoti-int8 skipped: no torchao here (pip install -e '.[build]')")
    if have_ipex:
        todo.append((str(IPEX_PY), "ipex", "fp32"))
        if bf16_can_win:
            todo.append((str(IPEX_PY), "ipex", "bf16"))
    else:
        skipped.append(f"{config}: ipex skipped: no .venv-ipex (make ipex-env)")
    return todo, skipped
