"""Peak memory of one function container given a batch of ten uploads at the size limit.

``largest_upload`` writes the largest file ingest accepts and assesses: a DICOM just under
``BONEAGE_MAX_FILE_BYTES`` (a phantom scaled up to ~44 megapixels, under ``BONEAGE_MAX_PIXELS``, plus
trailing padding). ``memory_worker`` runs in a fresh process (``python -m boneage.bench
--memory-worker``) as the function would: the configured engine and service, the real upload use case,
each fetch a fresh copy of the file read from disk (as a read from S3 is), in-memory stand-ins for the
table, reports and topic. It prints its peak RSS after init and after ``process_many`` over the batch.
``run_memory`` measures it with the byte bound and, for comparison, with the bound lifted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import struct
from pathlib import Path
from typing import Any

from .common import run_bench_worker

BATCH = 10


def largest_upload(path: Path) -> Path:
    import numpy as np

    from boneage.config import Settings
    from boneage.imaging.testing import dicom_bytes
    from boneage.phantom import render_sample

    ingest = Settings.from_env().ingest
    img, _ = render_sample(np.random.default_rng(7), kind="left", size=512)
    scale = int((ingest.max_pixels * 0.9) ** 0.5) // 512
    pixels = np.kron((np.clip(img, 0, 1) * 4095).astype(np.uint16), np.ones((scale, scale), dtype=np.uint16))
    data = dicom_bytes(pixels, bits_stored=12, tags={"PatientSex": "F", "PatientAge": "010Y"})
    # Data Set Trailing Padding (FFFC,FFFC) OB, explicit VR little endian: fills the file to the limit.
    pad = ingest.max_file_bytes - len(data) - 12
    data += struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, pad) + bytes(pad)
    path.write_bytes(data)
    return path


class _FromDisk:
    """The object reader: every fetch reads a fresh copy, as each S3 GET does."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def current_version(self, bucket: str, key: str) -> str | None:
        return "v1"

    def fetch(self, bucket: str, key: str, version_id: str | None) -> Any:
        from boneage.upload import FetchedObject

        return FetchedObject(data=self.path.read_bytes(), version_id=version_id, metadata={"sex": "F"},
                             content_type="application/dicom")


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def memory_worker(args: argparse.Namespace) -> int:
    from boneage.adapters.runtime import build_processor  # noqa: F401  (the function's imports, for its RSS)
    from boneage.config import Settings
    from boneage.engine import load_engine
    from boneage.fakes import InMemoryReports, InMemoryResultStore, RecordingPublisher
    from boneage.imaging import Limits
    from boneage.processor import UploadProcessor
    from boneage.service import AssessmentService
    from boneage.upload import Upload

    settings = Settings.from_env()
    if args.max_batch_bytes:
        settings = dataclasses.replace(settings, ingest=dataclasses.replace(settings.ingest,
                                                                            max_batch_bytes=args.max_batch_bytes))
    engine = load_engine(settings.engine.model_dir or None, backend=settings.engine.backend)
    service = AssessmentService(engine.assessor, limits=Limits.from_settings(settings.ingest))
    store = InMemoryResultStore()
    processor = UploadProcessor(settings=settings, objects=_FromDisk(args.phantom_file), service=service,
                                store=store, reports=InMemoryReports(), publisher=RecordingPublisher())
    after_init = _rss_mb()
    size = args.phantom_file.stat().st_size
    uploads = [Upload("bench", f"incoming/mem/large-{i}.dcm", "v1", size=size) for i in range(BATCH)]
    outcomes = processor.process_many(uploads, [1] * BATCH)
    print(json.dumps({"event": "memory", "file_bytes": size, "max_batch_bytes": settings.ingest.max_batch_bytes,
                      "rss_after_init_mb": after_init, "peak_rss_mb": _rss_mb(),
                      "outcomes": [o.outcome if not isinstance(o, Exception) else type(o).__name__ for o in outcomes],
                      # Decoding (the memory-heavy step) ran for each; a blocky upscaled phantom may then fail QC.
                      "reasons": sorted({str(r.result.reason) for r in store.records if r.result and r.result.reason}),
                      "model_version": engine.model_version}), flush=True)
    return 0


def _measure(file: Path, max_batch_bytes: int | None, env: dict[str, str] | None) -> dict[str, Any]:
    args = ["--memory-worker", "--phantom-file", str(file)]
    if max_batch_bytes:
        args += ["--max-batch-bytes", str(max_batch_bytes)]
    return run_bench_worker(args, "memory", timeout=1200, env=env)


def run_memory(folder: Path, memory_mb: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Peak RSS for a batch of ten largest uploads, bounded (the default) and unbounded, against MemorySize."""
    from boneage.config import Settings

    file = largest_upload(folder / "largest-upload.dcm")
    try:
        bounded = _measure(file, None, env)
        unbounded = _measure(file, BATCH * Settings.from_env().ingest.max_file_bytes, env)
    finally:
        file.unlink(missing_ok=True)
    peak = bounded.get("peak_rss_mb")
    return {"batch_size": BATCH, "function_memory_mb": memory_mb, "bounded": bounded, "unbounded": unbounded,
            "batch10_peak_rss_mb": peak, "under_function_memory": peak is not None and peak < memory_mb}
