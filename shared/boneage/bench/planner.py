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


def bf16_native(flags: frozenset[str] | None = None) -> bool:
    """AVX512-BF16 or AMX-BF16: without either, torch emulates bf16 through fp32 and it cannot win."""
    from boneage.engine import host

    flags = host.effective_flags() if flags is None else flags
    return host.BF16_FLAGS <= flags or host.AMX_FLAGS <= flags


def plan(config: str, peaks: dict[str, dict[str, float]], have_ipex: bool, *,
         native_bf16: bool | None = None) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(python, backend, precision) to measure, and the skipped combinations with reasons.

    Compiled bf16 is built only where bf16 is native (``bf16_native``) and its measured peak beats fp32's."""
    native = bf16_native() if native_bf16 is None else native_bf16
    bf16_can_win = native and peaks["bf16"]["peak"] > peaks["fp32"]["peak"]
    todo: list[tuple[str, str, str]] = [(PY, "eager", "fp32"), (PY, "torchscript", "fp32"), (PY, "aoti", "fp32")]
    skipped: list[str] = []
    why = (f"bf16 is not native on this host (no AVX512-BF16/AMX-BF16: emulated through fp32; measured bf16 peak "
           f"{peaks['bf16']['peak']} GFLOP/s against fp32 {peaks['fp32']['peak']})" if not native else
           f"measured bf16 peak {peaks['bf16']['peak']} GFLOP/s < fp32 peak {peaks['fp32']['peak']} GFLOP/s")
    if bf16_can_win:
        todo += [(PY, "eager", "bf16"), (PY, "torchscript", "bf16"), (PY, "aoti", "bf16")]
    elif config == "demo":
        # Slow here, but the demo weights are the trained ones: this is where the MAE change means something.
        todo.append((PY, "eager", "bf16"))
        skipped.append(f"{config}: torchscript-bf16, aoti-bf16 skipped: {why}; eager-bf16 measured for the accuracy delta")
    else:
        skipped.append(f"{config}: torchscript-bf16, aoti-bf16, ipex-bf16 skipped: {why} "
                       "(a random-weight bf16 run would take minutes per image)")
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


def bf16_skipped_rows(config: str, todo: list[tuple[str, str, str]], skipped: list[str]) -> dict[str, dict[str, str]]:
    """Table rows for the compiled bf16 artifacts the plan left out, with its reason, so the report
    shows them beside the ones measured."""
    reason = next((s.split(" skipped: ", 1)[1] for s in skipped if s.startswith(f"{config}: ") and "bf16" in s), None)
    planned = {f"{b}-{q}" for _, b, q in todo}
    if reason is None:
        return {}
    return {name: {"skipped": "bf16 not native" if "not native" in reason else "bf16 slower", "reason": reason}
            for name in ("torchscript-bf16", "aoti-bf16") if name not in planned}
