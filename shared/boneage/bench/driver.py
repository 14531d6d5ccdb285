"""The benchmark's command line and its run (``scripts/bench.py``, ``python -m boneage.bench``,
``boneage bench``): the flags, the hidden worker modes, and the loop over configs that writes
``report.json`` (after every config, so an interrupted run keeps its figures) and ``report.md``.

Heavy imports (torch, the engine, the local stack) happen inside the functions: a worker's cold start
is measured from its spawn and must not pay for what only the driver uses.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from . import __doc__ as DESCRIPTION
from .aoti_cache import DEFAULT_BUDGET_S
from .common import AVX2_ENV, CONFIGS, IPEX_PY, PY, ROOT, SLOW_AOTI_CONFIGS, save_phantoms
from .report import markdown
from .summary import best_stock, summarise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench.py", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--phantoms", type=int, default=6, help="phantoms per artifact on random weights")
    p.add_argument("--accuracy-phantoms", type=int, default=60,
                   help="phantoms per artifact on trained weights (demo), where the MAE change means something")
    p.add_argument("--e2e-repeats", type=int, default=5)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--e2e-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--artifacts", type=Path)
    p.add_argument("--phantom-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--cold-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--artifact")
    p.add_argument("--build-aoti", action="store_true",
                   help="compile the big configs' AOTInductor artifacts on a cache miss with no time limit")
    p.add_argument("--aoti-budget", type=float, default=None, metavar="SECONDS",
                   help="compile seconds for cache misses of the big configs' AOTInductor artifacts (default "
                        "%d; 0: reuse the cache only); see boneage.bench.aoti_cache" % DEFAULT_BUDGET_S)
    p.add_argument("--skip-decode", action="store_true", help="leave the decode table out (e.g. with --configs)")
    p.add_argument("--e2e-only", action="store_true", help="re-run the clinical end-to-end part into report.json")
    p.add_argument("--markdown-only", action="store_true", help="rewrite report.md from report.json")
    p.add_argument("--load-only", action="store_true",
                   help="run just the load test and the batch memory probe into report.json (the rest is kept)")
    p.add_argument("--load-uploads", type=int, default=1000, help="uploads in the load test (default 1000)")
    p.add_argument("--load-uploaders", type=int, default=10)
    p.add_argument("--load-workers", type=int, default=4, help="concurrent function workers in the load test")
    p.add_argument("--skip-load", action="store_true", help="leave the load test and memory probe out")
    p.add_argument("--pacs-only", action="store_true",
                   help="run just the PACS load figure (storescu -> gateway -> service -> Orthanc) into report.json")
    p.add_argument("--skip-pacs", action="store_true", help="leave the PACS load figure out")
    p.add_argument("--pacs-instances", type=int, default=100, help="instances pushed in the PACS figure (default 100)")
    p.add_argument("--pacs-associations", type=int, default=4, help="parallel storescu associations (default 4)")
    p.add_argument("--pacs-workers", type=int, default=4, help="function workers in the PACS figure (default 4)")
    p.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--max-batch-bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_worker:
        from .memory import memory_worker

        return memory_worker(args)
    if args.pacs_only:
        return _one_part(args, run_pacs_part, "pacs", "every_instance_assessed_once_results_once")
    if args.load_only:
        return _one_part(args, run_load_part, "load", "every_upload_one_record_one_notification")
    if args.e2e_only:
        # Re-run just the end-to-end breakdown into an existing report (the rest is kept).
        report = json.loads((args.out / "report.json").read_text())
        c = report["clinical"]
        folder = args.out / "model" / "clinical"
        from .e2e import run_e2e

        c["e2e"] = run_e2e(folder, best_stock(c), args.e2e_repeats)
        c["e2e_avx2"] = run_e2e(folder, best_stock(c), args.e2e_repeats, env=AVX2_ENV)
        c["e2e_p50_ms"], c["e2e_p50_ms_avx2"] = c["e2e"].get("p50_ms"), c["e2e_avx2"].get("p50_ms")
        (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        args.markdown_only = True
    if args.markdown_only:
        (args.out / "report.md").write_text(markdown(json.loads((args.out / "report.json").read_text())))
        return 0
    if args.worker:
        from .worker import worker

        return worker(args)
    if args.e2e_worker:
        from .e2e import e2e_worker

        return e2e_worker(args)
    return run(args)



def _one_part(args: argparse.Namespace, part: Any, key: str, verdict: str) -> int:
    """Run one part (load, PACS) into the existing report.json, keeping the rest; exit 1 if its invariant failed."""
    path = args.out / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    part(args, report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if "configs" in report:
        (args.out / "report.md").write_text(markdown(report))
    return 0 if report[key].get(verdict) else 1

def run(args: argparse.Namespace) -> int:
    """The whole benchmark into ``args.out``: every config, then decoding, then the peaks again."""
    from . import aoti_cache
    from .artifacts import ensure_artifacts
    from .e2e import run_e2e
    from .planner import best_probe, bf16_skipped_rows, plan, probe_peaks
    from .worker import import_torch_s, run_worker

    t_bench = time.perf_counter()
    import torch

    from boneage.engine import host
    from boneage.engine.manifest import Manifest

    threads = host.configure_torch()
    args.out.mkdir(parents=True, exist_ok=True)
    peaks = probe_peaks()
    print(f"peaks: {peaks}", flush=True)
    # The load average is recorded because this machine is shared: it says how much to trust the figures.
    report: dict[str, Any] = {"host": {**host.host_summary(), "threads": threads,
                                       "load_average_at_start": os.getloadavg()}, "peaks": peaks,
                              "configs": [], "skipped": [], "build_seconds": {}}
    have_ipex = IPEX_PY.exists()
    aoti_budget = aoti_cache.Budget(None if args.build_aoti else
                                    aoti_cache.DEFAULT_BUDGET_S if args.aoti_budget is None else args.aoti_budget)
    report["aoti_budget_s"] = aoti_budget.total_s
    phantom_files = {"random": save_phantoms(args.phantoms, args.out / "phantoms.npz"),
                     "trained": save_phantoms(args.accuracy_phantoms, args.out / "phantoms_accuracy.npz")}
    for config in [c.strip() for c in args.configs.split(",") if c.strip()]:
        out = ROOT / "build" / "model" if config == "demo" else args.out / "model" / config
        todo, skipped = plan(config, peaks, have_ipex)
        report["skipped"] += skipped
        log: list[str] = []
        aoti: dict[str, dict[str, Any]] = {}
        if config in SLOW_AOTI_CONFIGS:
            # Compiled within the run's budget and cached by everything that changes the compiled code.
            for python, backend, precision in [t for t in todo if t[1] == "aoti"]:
                print(f"{config} aoti-{precision}: cache ...", flush=True)
                aoti[f"aoti-{precision}"] = info = aoti_cache.ensure(config, precision, out, aoti_budget, python)
                print(f"  {json.dumps(info)[:400]}", flush=True)
                if "build_s" in info and not info.get("cache_hit"):
                    report["build_seconds"][f"{config}/aoti-{precision}"] = info["build_s"]
                if "skipped" in info or "error" in info:
                    todo.remove((python, backend, precision))
                    log.append(f"{config}: aoti-{precision} {'skipped' if 'skipped' in info else 'failed'}: "
                               f"{info.get('reason') or info.get('error')} (key {info['key']}; --build-aoti "
                               f"compiles without a limit, --aoti-budget SECONDS sets it)")
            todo_built = [t for t in todo if t[1] != "aoti"]
        else:
            todo_built = todo
        for python, backend, precision in todo_built:
            report["build_seconds"].update({f"{config}/{k}": v for k, v in
                                            ensure_artifacts(config, out, [(backend, precision)], python, log).items()})
        report["skipped"] += log
        rows: dict[str, dict[str, Any]] = {}
        gflops: dict[str, float] = {}
        for python, backend, precision in todo:
            name = f"{backend}-{precision}"
            if not (out / name / "manifest.json").exists():
                continue
            gflops[name] = Manifest.read(out / name).gflop_per_image["total"]
            print(f"{config} {name} ...", flush=True)
            rows[name] = run_worker(python, out, name, repeats=args.repeats,
                                    phantom_file=phantom_files["trained" if config == "demo" else "random"])
            print(f"  {json.dumps({k: v for k, v in rows[name].items() if not isinstance(v, list)})[:400]}", flush=True)
        for name, info in aoti.items():
            # Beside the measured figures: whether the compiled package came from the cache, and its build time.
            rows.setdefault(name, {}).update(aoti_cache={k: v for k, v in info.items() if k not in ("skipped", "reason")},
                                             **{k: info[k] for k in ("skipped", "reason", "error") if k in info})
        for name, row in bf16_skipped_rows(config, todo, skipped).items():
            rows.setdefault(name, row)
        summary = summarise(config, rows, gflops, peaks)
        if config == "clinical" and summary.get("cold_start_s"):
            summary.update(import_torch_s(PY))        # the floor, measured in this run
            summary["cold_start_ratio_to_import_torch"] = round(summary["cold_start_s"] / summary["import_torch_s"], 2)
        if config == "clinical" and summary.get("best_backend"):
            best = best_stock(summary)
            summary["e2e"] = run_e2e(out, best, args.e2e_repeats)
            summary["e2e_avx2"] = run_e2e(out, best, args.e2e_repeats, env=AVX2_ENV)
            summary["e2e_p50_ms"] = summary["e2e"].get("p50_ms")
            summary["e2e_p50_ms_avx2"] = summary["e2e_avx2"].get("p50_ms")
            print(f"  e2e {summary['e2e_p50_ms']} ms, avx2 {summary['e2e_p50_ms_avx2']} ms", flush=True)
        if summary.get("best_backend"):
            # The benchmark chooses the default the loader prefers for this artifact folder, among what
            # the stock image runs (an IPEX image asks for ipex explicitly: BONEAGE_BACKEND=ipex).
            b, q = best_stock(summary).rsplit("-", 1)
            (out / "default.json").write_text(json.dumps({"backend": b, "precision": q, "p50_ms": summary["artifacts"][f"{b}-{q}"]["p50_ms"],
                                                         "chosen_by": "scripts/bench.py"}) + "\n")
        report[config] = summary
        report["configs"].append(config)
        # Written after every config so an interrupted run still leaves its figures.
        (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    try:
        from .decode import run_decode_bench

        if not args.skip_decode:
            report["decode"] = run_decode_bench()
    except Exception as exc:            # the imaging engineer's bench; its absence must not lose ours
        report["decode"] = {"error": f"{type(exc).__name__}: {exc}"}
    # The peak is the best the machine showed: probed again at the end, and every share recomputed
    # against the higher reading (one int8 probe read 181 GOP/s at the start of a run, 297-364 in others).
    report["peaks_at_start"] = peaks
    report["peaks_at_end"] = probe_peaks()
    report["peaks"] = peaks = {p: best_probe(peaks[p], report["peaks_at_end"][p]) for p in peaks}
    for config in report["configs"]:
        resummarised = summarise(config, report[config]["artifacts"],
                                 {k: v["gflop_per_image"] for k, v in report[config]["artifacts"].items()
                                  if "gflop_per_image" in v}, peaks)
        report[config].update({k: v for k, v in resummarised.items() if k != "artifacts"})
    if not args.skip_load:
        run_load_part(args, report)
    if not args.skip_pacs:
        run_pacs_part(args, report)
    report["aoti_budget_spent_s"] = round(aoti_budget.spent_s, 1)
    report["bench_seconds"] = round(time.perf_counter() - t_bench, 1)
    report["host"]["load_average_at_end"] = os.getloadavg()
    report["torch"] = torch.__version__
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "report.md").write_text(markdown(report))
    print(f"wrote {args.out / 'report.json'} and report.md in {report['bench_seconds']} s")
    return 0


def run_load_part(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """The load test through the live local deployment and the batch memory probe, as ``report["load"]``."""
    from .load import LoadPlan, run_load
    from .memory import run_memory

    plan = LoadPlan(uploads=args.load_uploads, uploaders=args.load_uploaders, workers=args.load_workers)
    print(f"load: {plan.uploads} uploads from {plan.uploaders} uploaders against {plan.workers} workers ...", flush=True)
    try:
        load = run_load(plan)
    except Exception as exc:            # a failed load run must not lose the rest of the report
        load = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"  {json.dumps({k: v for k, v in load.items() if not isinstance(v, dict)})[:400]}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        load["memory"] = run_memory(args.out, _function_memory_mb())
        load["batch10_peak_rss_mb"] = load["memory"].get("batch10_peak_rss_mb")
    except Exception as exc:
        load["memory"] = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"  memory: {json.dumps(load['memory'])[:400]}", flush=True)
    report["load"] = load


def run_pacs_part(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """The PACS load figure (``boneage.bench.pacs``) as ``report["pacs"]``; skipped without Orthanc or dcmtk."""
    from boneage.devstack.dcmtk import dcmtk_available
    from boneage.devstack.orthanc import orthanc_binary

    from .pacs import PacsPlan, run_pacs_load

    if orthanc_binary() is None or not dcmtk_available():
        report["pacs"] = {"skipped": "Orthanc or dcmtk is not installed (make system-deps)"}
        return
    plan = PacsPlan(instances=args.pacs_instances, associations=args.pacs_associations, workers=args.pacs_workers)
    try:
        pacs = run_pacs_load(plan, args.out / "pacs")
    except Exception as exc:            # a failed PACS run must not lose the rest of the report
        pacs = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"  {json.dumps({k: v for k, v in pacs.items() if not isinstance(v, (dict, list))})[:400]}", flush=True)
    report["pacs"] = pacs


def _function_memory_mb() -> int:
    """MemorySize as template.yaml deploys it (the FunctionMemoryMB parameter's default)."""
    from boneage.devstack.stack import load_template

    return int(load_template()["Parameters"]["FunctionMemoryMB"]["Default"])
