"""The load test through the live local deployment (``boneage.devstack.local``): concurrent uploaders
against ``workers`` function containers consuming the queue as the event source mapping does.

What is sent (``LoadPlan``), out of ``uploads`` actions:

- ``duplicates`` (20 %) are duplicate *deliveries*: the S3 event of an object version already uploaded,
  sent to the queue again, as SQS's at-least-once delivery (or S3 itself) may. The invariant holds per
  object version (``upload_id``): still one record and one notification. (A hospital re-sending the
  same bytes to the same key is not a duplicate here: S3 makes a new version, so it is a new upload
  with its own record by design.)
- ``hostile`` (5 %) are files we must refuse without a retry storm: not an image, a truncated DICOM, an
  empty file, a PNG whose header claims 3.6 gigapixels, an unreadable age in the metadata.
- the rest are phantom radiographs (PNG) with metadata, from a few uploaders' hospitals.

Invariant checked: every object version put ends in exactly one terminal record and exactly one
notification, and nothing else is recorded or notified. Latency is from the PUT's return (the object
is stored; S3 emits its event) to the notification's arrival in a queue subscribed to the results
topic; throughput is object versions finished per second from the first PUT to the last notification.
"""

from __future__ import annotations

import json
import os
import random
import struct
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote_plus

from .common import pct

TERMINAL = ("completed", "rejected", "failed")


@dataclass(frozen=True)
class LoadPlan:
    uploads: int = 1000
    uploaders: int = 10
    workers: int = 4
    duplicates: float = 0.20
    hostile: float = 0.05
    hospitals: tuple[str, ...] = ("load-st-mary", "load-north-gen", "load-city")
    seed: int = 2024
    timeout_s: float = 3600


def _png_bomb_header() -> bytes:
    """A PNG that claims 60000 x 60000 pixels and carries none: refused from its header."""
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def payloads(plan: LoadPlan) -> tuple[list[tuple[bytes, dict[str, str]]], list[tuple[bytes, dict[str, str]]]]:
    """(good, hostile) bodies with their metadata; the good ones are a few phantoms reused under many keys."""
    import numpy as np

    from boneage.imaging.testing import dicom_bytes, png_bytes
    from boneage.phantom import render_sample

    rng = np.random.default_rng(plan.seed)
    good = []
    for _ in range(6):
        img, labels = render_sample(rng, kind="left", size=512)
        good.append((png_bytes((np.clip(img, 0, 1) * 255).astype(np.uint8)),
                     {"sex": "M" if labels["male"] else "F", "age-months": str(int(labels["chronological_age_months"]))}))
    dicom = dicom_bytes((np.clip(render_sample(rng, kind="left", size=256)[0], 0, 1) * 4095).astype(np.uint16),
                        bits_stored=12, tags={"PatientSex": "F"})
    hostile = [(b"%PDF-1.4 a scanned letter, not a radiograph\n" * 20, {}), (dicom[: len(dicom) // 2], {}),
               (b"", {}), (_png_bomb_header(), {}), (good[0][0], {"sex": "F", "age-months": "about ten years"})]
    return good, hostile


def s3_event(bucket: str, key: str, version_id: str, size: int, principal_id: str | None = None) -> str:
    """The body S3 puts on the queue for one created object (what a duplicate delivery repeats), naming
    the principal that put it as S3 does (``userIdentity``), when given."""
    identity = {"userIdentity": {"principalId": principal_id}} if principal_id else {}
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": "ObjectCreated:Put",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), **identity,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key), "size": size, "versionId": version_id}}}]})


def run_load(plan: LoadPlan, *, on_progress: Any = None) -> dict[str, Any]:
    from boneage.devstack.local import LocalDeployment
    from boneage.upload import upload_id_for

    n_dup = round(plan.uploads * plan.duplicates)
    n_hostile = round(plan.uploads * plan.hostile)
    n_put = plan.uploads - n_dup
    good, hostile = payloads(plan)
    rnd = random.Random(plan.seed)
    puts = [(hostile[i % len(hostile)] if i < n_hostile else good[i % len(good)]) for i in range(n_put)]
    rnd.shuffle(puts)
    # Each duplicate repeats the event of a put placed before it (so no uploader waits on a put that no
    # uploader has started); the task order interleaves them with the puts.
    tasks: list[tuple[str, int]] = [("put", i) for i in range(n_put)]
    for _ in range(n_dup):
        j = rnd.randrange(n_put)
        tasks.insert(rnd.randint(tasks.index(("put", j)) + 1, len(tasks)), ("dup", j))
    notes: dict[str, list[float]] = {}
    lock = threading.Lock()

    def on_notification(note: dict[str, Any]) -> None:
        with lock:
            notes.setdefault(note["upload_id"], []).append(note["received_at"])

    invocations: Counter[str] = Counter()
    durations: list[float] = []

    def on_event(event: dict[str, Any]) -> None:
        invocations.update([event["event"]])
        if event["event"] == "invocation":
            durations.append(event["duration_ms"])

    deployment = LocalDeployment.start(port=0, stack_name="boneage-load", workers=plan.workers, hospitals=(),
                                       retry_after_s=1, on_notification=on_notification, on_event=on_event)
    try:
        stack = deployment.stack
        sqs = stack.client("sqs")
        # Each hospital uploads as its own gateway role: the function checks who put an upload.
        access = {h: deployment.onboard(h) for h in plan.hospitals}
        s3 = {h: a.client("s3") for h, a in access.items()}
        done: dict[int, tuple[str, str, str, int, float]] = {}     # put -> key, version, upload_id, size, put time
        ready = [threading.Event() for _ in range(n_put)]

        def work(task: tuple[str, int]) -> None:
            kind, i = task
            if kind == "dup":
                ready[i].wait()
                if i not in done:       # its put failed (and raises from its own task)
                    return
                key, version, _, size, _ = done[i]
                principal = access[key.split("/")[1]].principal_id
                sqs.send_message(QueueUrl=stack.queue_url,
                                 MessageBody=s3_event(stack.input_bucket, key, version, size, principal))
                return
            body, metadata = puts[i]
            hospital = plan.hospitals[i % len(plan.hospitals)]
            key = f"incoming/{hospital}/load-{i:05d}.png"
            try:
                version = s3[hospital].put_object(Bucket=stack.input_bucket, Key=key, Body=body, Metadata=metadata)["VersionId"]
                done[i] = (key, version, upload_id_for(stack.input_bucket, key, version), len(body), time.time())
            finally:
                ready[i].set()

        t0 = time.time()
        with ThreadPoolExecutor(plan.uploaders) as pool:
            list(pool.map(work, tasks))
        uploaded_s = time.time() - t0
        expected = {v[2]: v[4] for v in done.values()}
        deadline = time.monotonic() + plan.timeout_s
        while time.monotonic() < deadline:
            with lock:
                missing = len(set(expected) - set(notes))
            if on_progress:
                on_progress(len(expected) - missing, len(expected))
            if not missing and stack.queue_depth(stack.queue_url) == 0:
                break
            time.sleep(1)
        time.sleep(3)       # late duplicates would show up here
        records = _records(stack, set(plan.hospitals))
        dead = stack.queue_depth(stack.dlq_url)
        peak_rss = deployment.function.peak_rss_mb
        config = deployment.function.config
    finally:
        deployment.stop()
    with lock:
        counts = {u: len(ts) for u, ts in notes.items()}
        latencies = [(min(notes[u]) - t) * 1000 for u, t in expected.items() if u in notes]
        last = max((max(ts) for ts in notes.values()), default=time.time())
    statuses = Counter(r["status"] for r in records.values())
    ok = (set(records) == set(expected) and all(records[u]["status"] in TERMINAL for u in expected)
          and set(counts) == set(expected) and all(c == 1 for c in counts.values()))
    return {
        **{k: v for k, v in asdict(plan).items() if k not in ("hospitals", "timeout_s", "duplicates", "hostile")},
        "duplicates": n_dup, "hostile": n_hostile, "object_versions": n_put, "batch_size": config.batch_size,
        "duplicate_means": "the S3 event of an uploaded object version delivered again",
        "latency_means": "PUT returned -> notification received from a queue subscribed to the topic",
        "throughput_per_s": round(len(latencies) / max(1e-9, last - t0), 2),
        "upload_phase_s": round(uploaded_s, 1), "elapsed_s": round(last - t0, 1),
        "p50_ms": round(pct(latencies, 0.5), 1) if latencies else None,
        "p90_ms": round(pct(latencies, 0.9), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "terminal_records": sum(1 for u in expected if records.get(u, {}).get("status") in TERMINAL),
        "records_by_status": dict(statuses), "unexpected_records": len(set(records) - set(expected)),
        "notifications": sum(counts.values()), "uploads_notified_more_than_once": sum(1 for c in counts.values() if c > 1),
        "uploads_never_notified": len(set(expected) - set(counts)), "dead_lettered": dead,
        "invocations": invocations.get("invocation", 0), "worker_timeouts": invocations.get("timeout", 0),
        # One invocation's own time: what latency would be without the queue in front of the workers.
        "invocation_p50_ms": round(pct(durations, 0.5), 1) if durations else None,
        "worker_peak_rss_mb": peak_rss, "model_dir": stack.handler_env.get("MODEL_DIR") or "demo weights",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "every_upload_one_record_one_notification": ok,
    }


def _records(stack: Any, hospitals: set[str]) -> dict[str, dict[str, Any]]:
    """The table's records of these hospitals, by upload_id (one scan, paginated)."""
    found: dict[str, dict[str, Any]] = {}
    for page in stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.outputs["ResultsTableName"]):
        for item in page["Items"]:
            if item.get("hospital_id", {}).get("S") in hospitals:
                found[item["upload_id"]["S"]] = {"status": item.get("status", {}).get("S")}
    return found
