"""Decode + normalise time per format for a 2500x2048 12-bit radiograph-like image.

``run_decode_bench(repeats)`` returns a dict (the benchmark files it under ``decode`` in
report.json); ``scripts/bench_decode.py`` (``main`` here) prints that dict as JSON. Each timing is one full
``boneage.imaging.ingest`` call on the encoded bytes (parse, header checks, decode, LUT pipeline,
reduction to the service's ``target_long_side``), median and minimum of ``repeats`` runs after
one warm-up. Goals from issue 3: uncompressed <= 60 ms, JPEG 2000 <= 100 ms, JPEG-LS <= 100 ms.
Targets from issue 15, judged per ISA class (``isa_class``, from /proc/cpuinfo): every row <= 100 ms
on the AVX-512 class, JPEG lossless SV1 <= 60 ms on either class. Each row names the decoder that
ran (``decoders.watch``); a row over its target whose format has no reduced-resolution decode and
whose fastest library decode alone already leaves no room is ``at_library_floor`` with
``floor_evidence`` (the decode-only times of every library measured, and the rest of the ingest).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydicom import uid

from boneage.bench import decoders
from boneage.engine.host import cpu_flags, isa_level
from boneage.imaging import ingest, testing

ROWS, COLUMNS, BITS = 2500, 2048, 12
SEED = 2500
TARGET_LONG_SIDE = 1024        # what AssessmentService asks ingest for today
MODEL_LONG_SIDE = 512          # the clinical config's detector input side: what the model needs
# The issue's goals; JPEG 2000's is "at the model's resolution" (decode only the level needed),
# the others hold at the service's 1024 as well.
GOALS_MS = {"dicom_uncompressed": 60.0, "dicom_jpeg_ls_lossless": 100.0, "dicom_jpeg2000_lossless@512": 100.0}
# Issue 15: (ms, the ISA class it is judged on; "any" = every class).
TARGET_MS, TARGET_CLASS = 100.0, "avx512"
TARGETS = {"dicom_jpeg_lossless_sv1": (60.0, "any")}


def _cases(img: np.ndarray) -> dict[str, tuple[Callable[[], bytes], int]]:
    d = lambda ts, **kw: (lambda: testing.dicom_bytes(img, ts, bits_stored=BITS, **kw))  # noqa: E731
    t = TARGET_LONG_SIDE
    return {
        "dicom_uncompressed": (d(uid.ExplicitVRLittleEndian), t),
        "dicom_deflated": (d(uid.DeflatedExplicitVRLittleEndian), t),
        "dicom_rle": (d(uid.RLELossless), t),
        "dicom_jpeg_lossless_sv1": (d(uid.JPEGLosslessSV1), t),
        "dicom_jpeg_extended_12bit": (d(uid.JPEGExtended12Bit), t),
        "dicom_jpeg_baseline_8bit": (lambda: testing.dicom_bytes((img >> 4).astype(np.uint8), uid.JPEGBaseline8Bit,
                                                                 bits_stored=8), t),
        "dicom_jpeg_ls_lossless": (d(uid.JPEGLSLossless), t),
        "dicom_jpeg_ls_near_lossless": (d(uid.JPEGLSNearLossless, near=2), t),
        "dicom_jpeg2000_lossless": (d(uid.JPEG2000Lossless), t),
        "dicom_jpeg2000_lossless@512": (d(uid.JPEG2000Lossless), MODEL_LONG_SIDE),
        "dicom_uncompressed@512": (d(uid.ExplicitVRLittleEndian), MODEL_LONG_SIDE),
        "dicom_jpeg_ls_lossless@512": (d(uid.JPEGLSLossless), MODEL_LONG_SIDE),
        "dicom_jpeg2000_lossy": (d(uid.JPEG2000, j2k_psnr=55.0), t),
        "dicom_htj2k_lossless": (d(uid.HTJ2KLossless), t),
        "dicom_htj2k_lossy": (d(uid.HTJ2K), t),
        "png_16bit": (lambda: testing.png_bytes(img), t),
        "png_8bit": (lambda: testing.png_bytes((img >> 4).astype(np.uint8)), t),
        "jpeg_8bit": (lambda: testing.jpeg_bytes((img >> 4).astype(np.uint8)), t),
    }


def _target(name: str, isa_class: str, median: float) -> dict:
    target, on_class = TARGETS.get(name, (TARGET_MS, TARGET_CLASS))
    judged = on_class in ("any", isa_class)
    return {"target_ms": target, "target_isa_class": on_class,
            "meets_target": (median <= target) if judged else None}


def _time(data: bytes, target: int, repeats: int) -> tuple[list[float], list[float], Any]:
    """(wall ms, CPU ms, last result). Everything here is single-threaded and in memory, so on a
    dedicated core (a Lambda vCPU) wall time equals CPU time; on a shared box wall time also counts
    the time other processes held our core, which CPU time does not."""
    result = ingest(data, target_long_side=target)          # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = ingest(data, target_long_side=target)
        cpu.append((time.process_time() - started_cpu) * 1000.0)
        wall.append((time.perf_counter() - started) * 1000.0)
    return wall, cpu, result


def run_decode_bench(repeats: int = 5, *, rows: int = ROWS, columns: int = COLUMNS) -> dict:
    """Time every format; ``rows``/``columns`` exist so a unit test can run this small."""
    img = testing.radiograph_like(np.random.default_rng(SEED), rows, columns, bits=BITS)
    raw_bytes = img.size * 2
    isa_class = isa_level(cpu_flags())
    formats: dict[str, dict] = {}
    rest_ms: float | None = None
    for name, (encode, target) in _cases(img).items():
        data = encode()
        with decoders.watch() as ran:
            ingest(data, target_long_side=target)
        wall, cpu, result = _time(data, target, repeats)
        median = statistics.median(cpu)
        if name == "dicom_uncompressed":
            rest_ms = median       # everything but a decoder: the floor's non-decode share
        entry = {"cpu_median_ms": round(median, 1), "wall_median_ms": round(statistics.median(wall), 1),
                 "wall_min_ms": round(min(wall), 1), "file_bytes": len(data),
                 "compression_ratio": round(raw_bytes / len(data), 2), "target_long_side": target,
                 "output_shape": list(result.pixels.shape), "decode_scale": round(result.meta.decode_scale, 3),
                 "decoder": decoders.label(ran, data), "isa_class": isa_class, **_target(name, isa_class, median)}
        if entry["meets_target"] is False or (entry["meets_target"] is None and median > entry["target_ms"]):
            entry.update(decoders.floor(name, data, median, entry["target_ms"], rest_ms, repeats))
        if name in GOALS_MS:
            entry["goal_ms"] = GOALS_MS[name]
            entry["meets_goal"] = median <= GOALS_MS[name]
        formats[name] = entry
    return {
        "image": {"rows": rows, "columns": columns, "bits_stored": BITS, "seed": SEED,
                  "generator": "boneage.imaging.testing.radiograph_like"},
        "what": "one boneage.imaging.ingest() call: parse + checks + decode + Modality/VOI LUT + reduction",
        "goal_basis": "cpu_median_ms (process CPU time; equals wall time on a dedicated core)",
        "repeats": repeats,
        # A shared 2-vCPU box: the load average says how much of a core each run really had.
        "host": {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count(),
                 "isa_class": isa_class, "load_average_1m": round(os.getloadavg()[0], 2)},
        "targets": {"every_row_ms": TARGET_MS, "every_row_isa_class": TARGET_CLASS,
                    **{name: {"ms": ms, "isa_class": c} for name, (ms, c) in TARGETS.items()}},
        "formats": formats,
        "goals_met": all(f.get("meets_goal", True) for f in formats.values()),
        # Rows judged on this host's class: met, or at the library floor with the evidence.
        "targets_met_on_this_class": all(f["meets_target"] is not False or f.get("at_library_floor")
                                         for f in formats.values()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(run_decode_bench(args.repeats), indent=2))
