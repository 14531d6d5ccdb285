"""``report.md``: the benchmark's report in Markdown, from ``report.json``."""

from __future__ import annotations

import json
from typing import Any

from .cost import lambda_cost


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Benchmark", "", f"Host: {json.dumps(report['host'])}", "",
             ("Peak GFLOP/s (GOP/s for int8) measured in this run, each probe the best of several runs, channels-last "
              "(boneage.engine.peak: GEMM, conv 1x1 512ch @32, conv 3x3 256ch @64 and 128ch @128; int8: PT2E-quantised "
              "conv 3x3 256ch @64 compiled by Inductor):"), ""]
    for p, v in report["peaks"].items():
        lines.append(f"- {p}: {v}")
    for config in report["configs"]:
        c = report[config]
        lines += ["", f"## {config} ({c.get('gflop_per_image')} GFLOP/image)", "",
                  f"best **{c.get('best_backend')}** p50 {c.get('best_p50_ms')} ms, eager fp32 {c.get('eager_fp32_p50_ms')} ms, "
                  f"speedup {c.get('speedup_vs_eager')}x, compute efficiency {c.get('compute_efficiency')}, "
                  f"cold start {c.get('cold_start_s')} s"
                  + (f" ({c['cold_start_ratio_to_import_torch']}x a bare import torch, {c.get('import_torch_s')} s)"
                     if "cold_start_ratio_to_import_torch" in c else "") + f", peak RSS {c.get('peak_rss_mb')} MB; "
                  f"{c.get('gflop_per_image_eager')} GFLOP/image as trained (eager)", "",
                  "| artifact | p50 ms | p90 ms | img/s b4 | img/s b8 | cold s | RSS MB | GFLOP | GFLOP/s | share of peak "
                  "| regressor Δ mean/max (mo) | assessed Δ mean (mo) | MAE Δ (mo) | QC changed | accurate |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in c["artifacts"].items():
            if "p50_ms" not in r:
                lines.append(f"| {name} | {_not_measured(r)} |")
                continue
            judged = {True: "yes", False: "**no**", None: "not judged (random weights)"}[r.get("accurate_enough")]
            lines.append(f"| {name} | {r['p50_ms']} | {r['p90_ms']} | {r.get('throughput_b4_img_s')} | "
                         f"{r.get('throughput_b8_img_s')} | {r.get('cold_start_s')} | {r.get('peak_rss_mb')} | "
                         f"{r.get('gflop_per_image')} | {r.get('gflop_s')} | {r.get('share_of_peak')} | "
                         f"{r.get('mean_output_delta_months')}/{r.get('max_output_delta_months')} | "
                         f"{r.get('mean_assessed_delta_months', '-')} | {r.get('phantom_mae_delta_months', '-')} | "
                         f"{r.get('decisions_changed', '-')} | {judged} |")
        cache = _aoti_cache_line(c["artifacts"], report.get("aoti_budget_s"))
        if cache:
            lines += ["", cache]
        for key in ("e2e", "e2e_avx2"):
            if key in c and "stages_p50_ms" in c[key]:
                s = c[key]
                lines += ["", f"End to end ({key}, {s['backend']}, {s['invocations']} invocations, p50 ms): "
                          + ", ".join(f"{k} {v}" for k, v in s["stages_p50_ms"].items())]
    lines += lambda_cost(report)
    lines += load_section(report.get("load"))
    lines += pacs_section(report.get("pacs"))
    if report.get("skipped"):
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in report["skipped"]]
    if report.get("decode"):
        lines += ["", "## Decode", ""] + _decode_table(report["decode"])
    lines += readme_tables(report)
    lines += ["", f"Total bench time: {report['bench_seconds']} s", ""]
    return "\n".join(lines)


def _not_measured(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"skipped, {r['skipped']}: {str(r.get('reason', ''))[:200]}"
    return f"failed: {str(r.get('error', ''))[-120:].replace('|', '/').replace(chr(10), ' ')}"


def _aoti_cache_line(rows: dict[str, Any], budget_s: float | None) -> str:
    """Where each AOTInductor package came from: the cache (and how long it once took to build),
    a build in this run, or nowhere (the budget)."""
    parts = []
    for name, r in rows.items():
        info = r.get("aoti_cache")
        if not info:
            continue
        if info.get("cache_hit"):
            parts.append(f"{name} cache hit (key {info['key']}, built in {info.get('build_s')} s)")
        elif "skipped" in r:
            parts.append(f"{name} not built: {r['skipped']}, {r.get('reason')}")
        elif "error" in r and "build_s" in info and "p50_ms" not in r:
            parts.append(f"{name} build failed after {info['build_s']} s")
        else:
            parts.append(f"{name} built in this run in **{info.get('build_s')} s** (key {info['key']})")
    if not parts:
        return ""
    budget = "no limit (--build-aoti)" if budget_s is None else f"{budget_s:.0f} s"
    return f"AOTInductor packages (cache build/cache/aoti, compile budget {budget}): " + "; ".join(parts) + "."


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v} ms"


def readme_tables(report: dict[str, Any]) -> list[str]:
    """The README's "Benchmark results" tables, from this run only, in the README's form: the lead
    pastes this section instead of copying figures by hand."""
    host = report.get("host", {})
    loads = [round(x, 1) for x in (host.get("load_average_at_start") or [None])[:1] + (host.get("load_average_at_end") or [None])[:1]
             if x is not None]
    lines = ["", "## README tables", "",
             f"From this run only: ISA class **{host.get('isa')}** (bf16 native: {host.get('bf16_native')}), torch "
             f"{report.get('torch') or host.get('torch')}, {host.get('threads')} threads, load average "
             f"{' -> '.join(map(str, loads))} (start -> end), {report.get('bench_seconds')} s in all.", "",
             "| config (GFLOP/image, deployed) | eager fp32 p50 | best p50 (artifact) | speedup | share of peak "
             "| cold start | peak RSS |", "|---|---|---|---|---|---|---|"]
    for config in report.get("configs", []):
        c = report[config]
        lines.append(f"| {config} ({c.get('gflop_per_image')}) | {_ms(c.get('eager_fp32_p50_ms'))} | "
                     f"{_ms(c.get('best_p50_ms'))} ({c.get('best_backend')}) | {c.get('speedup_vs_eager')}x | "
                     f"{c.get('compute_efficiency')} | {c.get('cold_start_s')} s | {c.get('peak_rss_mb')} MB |")
    if "seed_equivalent" in report.get("configs", []):
        c = report["seed_equivalent"]
        lines += ["", f"Seed-equivalent artifacts (best **{c.get('best_backend')}**, p50 {_ms(c.get('best_p50_ms'))}):", "",
                  "| artifact | p50 | p90 | cold start | peak RSS | AOTInductor package |", "|---|---|---|---|---|---|"]
        for name, r in c["artifacts"].items():
            info = r.get("aoti_cache") or {}
            source = ("" if not info else f"cache hit (built in {info.get('build_s')} s)" if info.get("cache_hit")
                      else f"built in this run in {info.get('build_s')} s" if "p50_ms" in r else "")
            if "p50_ms" not in r:
                lines.append(f"| {name} | {_not_measured(r)} | | | | {source} |")
                continue
            lines.append(f"| {name} | {_ms(r['p50_ms'])} | {_ms(r.get('p90_ms'))} | {r.get('cold_start_s')} s | "
                         f"{r.get('peak_rss_mb')} MB | {source} |")
    decode = report.get("decode") or {}
    if "formats" in decode:
        d = decode.get("host", {})
        image = decode.get("image") or {}
        lines += ["", f"Decoding a {image.get('rows')} x {image.get('columns')} "
                      f"{image.get('bits_stored')}-bit frame the way the service does, CPU ms (median of "
                      f"{decode.get('repeats')}), ISA class **{d.get('isa_class')}**, load average "
                      f"{d.get('load_average_1m')}:", "",
                  "| format | decoder | measured | target (class): met | goal: met | at the library floor |",
                  "|---|---|---|---|---|---|"]
        for name, row in decode["formats"].items():
            met = {True: "yes", False: "**no**", None: "not judged on this class"}[row.get("meets_target")]
            goal = f"≤ {row['goal_ms']}: {'yes' if row.get('meets_goal') else '**no**'}" if "goal_ms" in row else ""
            floor = ""
            if row.get("at_library_floor"):
                evidence = row.get("floor_evidence") or {}
                decoders = evidence.get("decode_only_cpu_median_ms") or {}
                fastest = min(decoders, key=decoders.get) if decoders else "?"
                floor = (f"yes: decode alone {decoders.get(fastest)} ({fastest}) + rest of the ingest "
                         f"{evidence.get('rest_of_ingest_cpu_median_ms')}")
            lines.append(f"| {name} | {row.get('decoder')} | {row.get('cpu_median_ms')} | "
                         f"≤ {row.get('target_ms')} ({row.get('target_isa_class')}): {met} | {goal} | {floor} |")
    return lines


def _decode_table(decode: dict[str, Any]) -> list[str]:
    """One row per format: the decoder that ran, CPU ms, and the target on this host's ISA class."""
    if "formats" not in decode:
        return ["```", json.dumps(decode, indent=1)[:3000], "```"]
    host = decode.get("host", {})
    lines = [f"ISA class {host.get('isa_class')}, load average {host.get('load_average_1m')}; "
             "CPU ms median of the run (details in report.json):", "",
             "| format | decoder | CPU ms | target ms (class) | met | at library floor |", "|---|---|---|---|---|---|"]
    for name, row in decode["formats"].items():
        met = {True: "yes", False: "no", None: "not judged here"}[row.get("meets_target")]
        lines.append(f"| {name} | {row.get('decoder')} | {row.get('cpu_median_ms')} | "
                     f"{row.get('target_ms')} ({row.get('target_isa_class')}) | {met} | "
                     f"{'yes' if row.get('at_library_floor') else ''} |")
    return lines


def load_section(load: dict[str, Any] | None) -> list[str]:
    """The load test through the live local deployment, and the batch memory probe."""
    if not load:
        return []
    if "error" in load:
        return ["", "## Load", "", f"failed: {load['error'][-300:]}"]
    lines = ["", "## Load (live local deployment)", "",
             f"{load['uploads']} uploads from {load['uploaders']} uploaders ({load['duplicates']} duplicate deliveries, "
             f"{load['hostile']} hostile files) against {load['workers']} function workers, batch size "
             f"{load['batch_size']}: **{load['throughput_per_s']} uploads/s**, upload -> notification p50 "
             f"**{load['p50_ms']} ms**, p90 **{load['p90_ms']} ms** (max {load['max_ms']} ms; one invocation p50 {load.get('invocation_p50_ms')} ms); "
             f"{load['terminal_records']} terminal records ({load['records_by_status']}) and {load['notifications']} "
             f"notifications for {load['object_versions']} object versions; every upload one record and one "
             f"notification: **{load['every_upload_one_record_one_notification']}**; worker peak RSS "
             f"{load['worker_peak_rss_mb']} MB; load average {load['load_average']}."]
    memory = load.get("memory") or {}
    if "bounded" in memory:
        b, u = memory["bounded"], memory["unbounded"]
        lines += ["", f"Memory, batch of {memory['batch_size']} uploads of {b.get('file_bytes')} bytes (the limit): "
                  f"peak RSS **{b.get('peak_rss_mb')} MB** with the byte bound ({b.get('max_batch_bytes')} bytes per "
                  f"group), {u.get('peak_rss_mb')} MB without it, against MemorySize {memory['function_memory_mb']} MB "
                  f"(after init {b.get('rss_after_init_mb')} MB)."]
    return lines


def pacs_section(pacs: dict[str, Any] | None) -> list[str]:
    """The PACS load figure: storescu -> boneage gateway -> the live local deployment -> Orthanc."""
    if not pacs:
        return []
    if "error" in pacs or "skipped" in pacs:
        return ["", "## PACS (Orthanc and dcmtk)", "", f"{'failed' if 'error' in pacs else 'skipped'}: "
                f"{str(pacs.get('error') or pacs.get('skipped'))[-300:]}"]
    return ["", "## PACS (Orthanc and dcmtk)", "",
            f"{pacs['instances']} instances ({pacs['size']} px CR/DX phantoms, one per study) pushed by `storescu` over "
            f"{pacs['associations']} parallel associations to `boneage gateway`, assessed by {pacs['workers']} function "
            f"workers of the live local deployment, SC and SR sent back to Orthanc: C-STORE acknowledged -> both results "
            f"stored in Orthanc p50 **{pacs['p50_ms']} ms**, p90 **{pacs['p90_ms']} ms** (max {pacs['max_ms']} ms); "
            f"all {pacs['measured']} in PACS **{pacs['total_s']} s** after the first C-STORE ({pacs['throughput_per_s']} "
            f"instances/s; pushing took {pacs['push_s']} s); {pacs['acknowledged']} acknowledged, every instance "
            f"assessed once and its results in PACS once: **{pacs['every_instance_assessed_once_results_once']}**; "
            f"load average {pacs['load_average']}."]
