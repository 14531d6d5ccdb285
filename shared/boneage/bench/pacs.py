"""The PACS load figure: instances pushed by ``storescu`` over parallel associations through ``boneage gateway``
to the live local deployment and back into Orthanc (``boneage.devstack.pacs.PacsLoop``).

``instances`` single-image phantom studies (fake patients) are split over ``associations`` concurrent
``storescu`` processes, as several modalities or a PACS's parallel sends would push them. Per instance,
latency is from its C-STORE acknowledgement (``storescu`` read the success response: the gateway has it
in its spool) to the moment both its Secondary Capture and its Structured Report are stored in Orthanc
(Orthanc's ``OnStoredInstance`` receipts, watched every 50 ms). Total is from the first ``storescu`` start
to the last result stored. The run also checks the invariant of the fault tests: one completed record
per instance and its SC and SR in Orthanc once each.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .common import pct

TERMINAL = ("completed", "rejected", "failed")


@dataclass(frozen=True)
class PacsPlan:
    instances: int = 100
    associations: int = 4
    workers: int = 4                 # function workers (Lambda's concurrency)
    size: int = 256                  # phantom pixels (the model's input is smaller)
    seed: int = 4100
    timeout_s: float = 1800


class _ReceiptWatcher:
    """Times each new line of Orthanc's receipts as it appears: {Orthanc instance id: first seen}."""

    def __init__(self, path: Path) -> None:
        self.path, self.seen = path, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="receipts", daemon=True)

    def __enter__(self) -> _ReceiptWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._poll()

    def _poll(self) -> None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return
        now = time.time()
        for line in text.splitlines():
            self.seen.setdefault(line.split("\t", 1)[0], now)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._poll()


def run_pacs_load(plan: PacsPlan, workdir: Path, *, say: Any = print) -> dict[str, Any]:
    from boneage.devstack.local import LocalDeployment
    from boneage.devstack.pacs import PacsLoop
    from boneage.devstack.studies import phantom_study

    shutil.rmtree(workdir, ignore_errors=True)
    studies = [phantom_study(plan.seed + i, size=plan.size, modality="CR" if i % 4 == 3 else "DX")
               for i in range(plan.instances)]
    files = [s.write(workdir / "studies" / f"{i:04d}")[0] for i, s in enumerate(studies)]
    groups = [files[i::plan.associations] for i in range(plan.associations)]
    deployment = LocalDeployment.start(port=0, stack_name="boneage-bench-pacs", workers=plan.workers, hospitals=(),
                                       retry_after_s=1)
    try:
        with PacsLoop.start(deployment, workdir / "loop", hospital_id="bench-pacs", proxy=False) as loop, \
                _ReceiptWatcher(loop.orthanc.receipts_path) as watcher:
            say(f"pacs: {plan.instances} instances over {plan.associations} storescu associations, "
                f"{plan.workers} function workers ...")
            t0 = time.time()
            with ThreadPoolExecutor(plan.associations) as pool:
                sent = list(pool.map(lambda group: loop.push(group, timeout_s=plan.timeout_s), groups))
            pushed_s = time.time() - t0
            acked = {p: t for r in sent for p, t in r.ack_times.items()}
            by_file = dict(zip(files, studies))
            say(f"  pushed in {pushed_s:.1f} s, {len(acked)} acknowledged; waiting for the results in Orthanc ...")
            deadline = time.monotonic() + plan.timeout_s
            sources = {by_file[p].sop_instance_uids[0] for p in acked}
            while time.monotonic() < deadline:
                # Done when every acknowledged instance has a terminal record and each completed one an SC
                # and an SR in Orthanc (a rejected one sends nothing back: the check below reports it).
                if sum(loop.receipts_from_gateway().values()) >= 2 * len(acked):
                    break
                rows = loop.records_by_instance()
                terminal = [r[0] for u in sources for r in [rows.get(u)] if r and r[0].get("status") in TERMINAL]
                completed = sum(1 for r in terminal if r.get("status") == "completed")
                if len(terminal) == len(sources) and sum(loop.receipts_from_gateway().values()) >= 2 * completed:
                    break
                time.sleep(0.5)
            time.sleep(2)       # a late duplicate would show in the check below
            rows = loop.records_by_instance()
            found: dict[str, dict[str, list[str]]] = {}
            problems = []
            for s in studies:
                got = loop.results(s.study_instance_uid, s.sop_instance_uids).get(s.sop_instance_uids[0], {})
                if got.get("SC") and got.get("SR"):
                    found[s.sop_instance_uids[0]] = got
                problems += loop.check_exactly_once(s.study_instance_uid, s.sop_instance_uids, records=rows)
            receipts = dict(watcher.seen)
        latencies, ends = [], []
        for path, study in by_file.items():
            got = found.get(study.sop_instance_uids[0])
            if path not in acked or not got:
                continue
            stored = [receipts.get(oid) for oid in got["SC"][:1] + got["SR"][:1]]
            if None in stored:
                continue
            ends.append(max(stored))
            latencies.append((max(stored) - acked[path]) * 1000)
        function = deployment.function
        config = function.config
        peak_rss = function.peak_rss_mb
    finally:
        deployment.stop()
    return {
        **{k: v for k, v in asdict(plan).items() if k != "timeout_s"},
        "latency_means": "C-STORE acknowledged to the gateway -> its SC and SR both stored in Orthanc",
        "acknowledged": len(acked), "refused_or_unacknowledged": plan.instances - len(acked),
        "results_in_pacs": len(found), "measured": len(latencies),
        "push_s": round(pushed_s, 1),
        "total_s": round(max(ends) - t0, 1) if ends else None,
        "throughput_per_s": round(len(ends) / max(1e-9, max(ends) - t0), 2) if ends else None,
        "p50_ms": round(pct(latencies, 0.5), 1) if latencies else None,
        "p90_ms": round(pct(latencies, 0.9), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        # The quickest instance: the nearest to the loop's own time without queueing.
        "min_ms": round(min(latencies), 1) if latencies else None,
        "batch_size": config.batch_size, "worker_peak_rss_mb": peak_rss,
        "every_instance_assessed_once_results_once": not problems and len(found) == plan.instances,
        "problems": problems[:20],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
