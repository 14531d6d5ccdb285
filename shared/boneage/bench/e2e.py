"""End to end through the local stack (moto server, the real handler), stage by stage, for one artifact.

``e2e_worker`` runs in a fresh process (``python -m boneage.bench --e2e-worker ...``) and prints one
JSON line; ``run_e2e`` spawns it (natively, or capped to AVX2 through ``env``). Needs the ``dev``
extra (``boneage.devstack``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from .common import pct, phantoms, run_bench_worker
from .oracle import OracleDecisions


def e2e_worker(args: argparse.Namespace) -> int:
    import io
    import logging

    import numpy as np
    from PIL import Image

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from boneage.devstack import LambdaContext, LocalStack, load_handler
    from boneage.engine import load_engine
    from boneage.service import AssessmentService

    stack = LocalStack.start(stack_name="boneage-bench")
    try:
        with stack.environment(MODEL_DIR=str(args.artifacts)):
            app = load_handler()
            from boneage.adapters.runtime import build_processor
            from boneage.config import Settings

            engine = load_engine(args.artifacts, backend=args.artifact)
            stages: dict[str, float] = {}
            det_fn, reg_fn = engine.detector_fn, engine.regressor_fn

            def timed(name: str, fn: Any) -> Any:
                def call(*a: Any, **k: Any) -> Any:
                    t0 = time.perf_counter()
                    try:
                        return fn(*a, **k)
                    finally:
                        stages[name] = stages.get(name, 0.0) + (time.perf_counter() - t0) * 1000
                return call

            # The networks are timed through the assessor's injection points (boneage.model.pipeline);
            # the oracle's rewrite of their decisions runs after the timed call, outside the stage times.
            assessor = engine.assessor.with_stages(timed("detect", det_fn), timed("regress", reg_fn))
            oracle = OracleDecisions(assessor.cfg) if "-random" in engine.model_version else None
            if oracle is not None:
                assessor = assessor.with_decisions(oracle)
            service = AssessmentService(assessor)
            processor = build_processor(Settings.from_env(), service)

            class Timed:
                def __init__(self, inner: Any, stage: str) -> None:
                    self._inner, self._stage = inner, stage

                def __getattr__(self, name: str) -> Any:
                    attr = getattr(self._inner, name)
                    return timed(self._stage, attr) if callable(attr) else attr

            processor.objects = Timed(processor.objects, "fetch")
            processor.store = Timed(processor.store, "persist")
            processor.reports = Timed(processor.reports, "persist")
            processor.publisher = Timed(processor.publisher, "notify")
            app.init(processor)
            from boneage.devstack import onboard

            s3 = onboard(stack, "bench-hospital").client("s3")     # the function checks who put an upload
            rows = []
            size = 1024
            for i, (img, labels) in enumerate(phantoms(args.repeats + 1, size=size)):
                if oracle is not None:
                    oracle.next_box(labels["hand_boxes"][0], size)
                buf = io.BytesIO()
                Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG", compress_level=1)
                key = f"incoming/bench-hospital/study-{i:04d}.png"
                meta = {"sex": "M" if labels["male"] else "F", "age-months": str(int(labels["chronological_age_months"]))}
                s3.put_object(Bucket=stack.input_bucket, Key=key, Body=buf.getvalue(), Metadata=meta)
                event, messages = stack.receive_event(batch_size=1)
                while not messages:
                    time.sleep(0.02)
                    event, messages = stack.receive_event(batch_size=1)
                stages.clear()
                service_timings: dict[str, float] = {}
                statuses: list[str] = []
                orig = service.assess_many

                def capture(items: Any, **kw: Any) -> Any:
                    res = orig(items, **kw)
                    service_timings.update(res[0][0].timings_ms)
                    statuses.append(f"{res[0][0].status}:{res[0][0].reason or ''}")
                    return res

                service.assess_many = capture  # type: ignore[method-assign]
                t0 = time.perf_counter()
                app.handler(event, LambdaContext())
                total = (time.perf_counter() - t0) * 1000
                service.assess_many = orig  # type: ignore[method-assign]
                for m in messages:
                    stack.client("sqs").delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
                # Letterbox, crop and box decoding: the model stage minus the two networks.
                preprocess = max(0.0, service_timings.get("model", 0.0) - stages.get("detect", 0) - stages.get("regress", 0))
                regress_added = "regress" not in stages
                if regress_added:
                    # Random weights find no hand, so QC stops before the regressor; a clinical upload
                    # would run it. Time one regressor call and add it, so the total is honest.
                    from boneage.engine.loader import _zero_from_dict

                    t1 = time.perf_counter()
                    reg_fn(*_zero_from_dict(engine.manifest, "regressor"))
                    stages["regress"] = (time.perf_counter() - t1) * 1000
                    total += stages["regress"]
                row = {"total": total, **stages, "decode": service_timings.get("decode", 0.0),
                       "regress_added": regress_added, "status": statuses[-1] if statuses else None}
                row["preprocess"] = preprocess
                row["interpret+report"] = service_timings.get("interpret", 0.0) + service_timings.get("report", 0.0)
                rows.append(row)
            rows = rows[1:]                                   # the first invocation warms the clients
            keys = ["fetch", "decode", "preprocess", "detect", "regress", "interpret+report", "persist", "notify", "total"]
            out = {"backend": f"{engine.backend}-{engine.precision}", "invocations": len(rows),
                   "oracle_decisions": oracle is not None, "statuses": [r["status"] for r in rows],
                   "regress_added_after_qc_rejection": sum(bool(r["regress_added"]) for r in rows),
                   "stages_p50_ms": {k: round(statistics.median(r.get(k, 0.0) for r in rows), 1) for k in keys},
                   "p50_ms": round(statistics.median(r["total"] for r in rows), 1),
                   "p90_ms": round(pct([r["total"] for r in rows], 0.9), 1)}
            print(json.dumps({"event": "e2e", **out}), flush=True)
    finally:
        stack.stop()
    return 0


def run_e2e(artifacts: Path, artifact: str, repeats: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    return run_bench_worker(["--e2e-worker", "--artifacts", str(artifacts), "--artifact", artifact,
                             "--repeats", str(repeats)], "e2e", timeout=900, env=env)
