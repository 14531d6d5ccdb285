"""The hospital's side of the application on this machine: Orthanc as its PACS, ``boneage gateway run`` as
its DICOM node, both wired to a live local deployment (``boneage.devstack.local``) that assesses.

``PacsLoop.start(deployment, workdir)`` onboards a hospital in the deployment (``LocalDeployment.onboard``:
its role's session credentials and its filtered results queue, from ``boneage.onboarding``'s template),
starts a ``TcpProxy`` in front of the emulator (the gateway's only way to AWS, so a test can cut it),
Orthanc with the gateway declared as a modality, and the gateway as a subprocess (``HospitalGateway``:
``python -m boneage.cli gateway run --config ...`` with the hospital's role session) pointed at Orthanc
for results. Then:

- ``send_from_pacs(study)``: the study stored in Orthanc and sent by Orthanc's C-STORE SCU to the gateway;
- ``push(files)``: ``storescu`` as a modality sending straight to the gateway;
- ``results(study_uid)``: the Secondary Captures and Structured Reports in Orthanc for each source
  instance (read back through Orthanc's REST API), ``records()``: the deployment's table rows of the
  hospital, ``object_keys()``: every key written for it;
- ``gateway.kill()`` (SIGKILL) / ``gateway.start()``, ``orthanc.stop()`` / ``orthanc.start()``, ``proxy.cut()`` /
  ``proxy.restore()``: the faults.

Used by the integration tests, ``make demo`` (``pacs_demo``) and ``make bench`` (``boneage.bench.pacs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dcmtk import StoreResult, storescu
from .gateway import GatewayProcess, gateway_cli
from .orthanc import Modality, Orthanc, free_port
from .proxy import TcpProxy
from .hospitals import HospitalAccess
from .stack import REGION

if TYPE_CHECKING:
    from .local import LocalDeployment
    from .studies import PhantomStudy

GATEWAY_AET = "BONEAGE"
PACS_AET = "PACS"
MODALITY_AET = "XR-ROOM-3"
GATEWAY_MODALITY = "boneage"          # the gateway's name among Orthanc's modalities
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
              "1.2.840.10008.5.1.4.1.1.88.34"}
# Short back-off so a fault ends within seconds of its cause going away (the defaults are minutes).
FAST_RETRY = {"initial_backoff_s": 0.25, "max_backoff_s": 2.0, "max_delivery_attempts": 200, "max_delivery_age_s": 600}


class HospitalGateway(GatewayProcess):
    """The hospital's ``boneage gateway run`` (``boneage.devstack.gateway.GatewayProcess``) with what the PACS
    tests need besides: its credentials kept for restarts and its operator commands, its port."""

    def __init__(self, config_path: Path, *, credentials: Mapping[str, str], log_path: Path) -> None:
        super().__init__(config_path, log_path=log_path)
        self.credentials = dict(credentials)
        self.starts = 0

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text())

    @property
    def port(self) -> int:
        return int(self.config["listen_port"])

    def start(self, *, timeout_s: float = 60.0, **_: Any) -> HospitalGateway:       # type: ignore[override]
        """Start (or restart after ``kill``) with the hospital's credentials; returns once it listens."""
        if self.running:
            return self
        self.starts += 1
        try:
            super().start(ready_port=self.port, timeout_s=timeout_s, credentials=self.credentials)
        except BaseException:
            self.kill()
            raise RuntimeError(f"the gateway did not listen on {self.port}; its log:\n{self.log_tail()}") from None
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (the gateway finishes what it is doing), SIGKILL if it hangs."""
        if self.running:
            try:
                self.terminate(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def cli(self, action: str) -> dict[str, Any]:
        """``boneage gateway <action> --config ... --json`` (status, resend) with the hospital's credentials."""
        return gateway_cli(self.config_path, action, env={**os.environ, **self.credentials})


@dataclass
class PacsLoop:
    deployment: LocalDeployment
    workdir: Path
    access: HospitalAccess
    proxy: TcpProxy
    orthanc: Orthanc
    gateway: HospitalGateway
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, deployment: LocalDeployment, workdir: Path, *, hospital_id: str = "pacs-hospital",
              retry: Mapping[str, float] | None = None, proxy: bool = True, stow: bool = False,
              visibility_timeout_s: int = 10) -> PacsLoop:
        """Onboard ``hospital_id``, start the proxy, Orthanc and the gateway (in that order)."""
        workdir = workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        access = deployment.onboard(hospital_id)
        endpoint_port = int(deployment.stack.endpoint.rsplit(":", 1)[1].split("/")[0])
        relay = TcpProxy(endpoint_port).start()
        gateway_port = free_port()
        pacs = Orthanc(workdir / "orthanc", aet=PACS_AET,
                       modalities={GATEWAY_MODALITY: Modality(GATEWAY_AET, "127.0.0.1", gateway_port)})
        loop: PacsLoop | None = None
        try:
            pacs.start()
            config = {
                "hospital_id": hospital_id, "ae_title": GATEWAY_AET, "listen_host": "127.0.0.1",
                "listen_port": gateway_port, "allowed_calling_aets": [PACS_AET, MODALITY_AET],
                "spool_dir": str(workdir / "spool"),
                "aws": {"endpoint_url": relay.url if proxy else deployment.stack.endpoint, "region": REGION,
                        "upload_bucket": access.input_bucket, "results_bucket": access.results_bucket,
                        "results_queue_url": access.results_queue_url, "wait_time_s": 1,
                        "visibility_timeout_s": visibility_timeout_s},
                "retry": dict(retry or FAST_RETRY),
            }
            if stow:
                config["stow_url"] = f"{pacs.url}/dicom-web/studies"
            else:
                config["pacs"] = {"host": "127.0.0.1", "port": pacs.dicom_port, "ae_title": pacs.aet}
            config_path = workdir / "gateway.json"
            config_path.write_text(json.dumps(config, indent=2))
            gateway = HospitalGateway(config_path, credentials=access.credentials, log_path=workdir / "gateway.log")
            loop = cls(deployment, workdir, access, relay, pacs, gateway)
            gateway.start()
        except BaseException:
            if loop is not None:
                loop.stop()
            else:
                pacs.stop()
                relay.stop()
            raise
        return loop

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for step in (self.gateway.stop, self.orthanc.stop, self.proxy.stop):
            with contextlib.suppress(Exception):
                step()

    def __enter__(self) -> PacsLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def hospital_id(self) -> str:
        return self.access.hospital_id

    # -- sending -------------------------------------------------------------------------------
    def send_from_pacs(self, study: PhantomStudy, *, timeout_s: float = 120) -> dict[str, Any]:
        """Store the study in Orthanc, then have Orthanc C-STORE its images to the gateway (a radiologist's
        "send to"). The images only: once the results are back the study holds them too."""
        ids = [self.orthanc.upload(instance.data)["ID"] for instance in study]
        return self.orthanc.send(GATEWAY_MODALITY, ids, timeout_s=timeout_s)

    def push(self, files: Sequence[Path], *, calling_aet: str = MODALITY_AET,
             on_ack: Callable[[Path, int], None] | None = None, timeout_s: float = 300) -> StoreResult:
        """``storescu`` as a modality: the files over one association straight to the gateway."""
        return storescu(files, "127.0.0.1", self.gateway.port, called_aet=GATEWAY_AET, calling_aet=calling_aet,
                        on_ack=on_ack, timeout_s=timeout_s)

    # -- what came back ------------------------------------------------------------------------
    def results(self, study_uid: str, sources: Iterable[str] | None = None) -> dict[str, dict[str, list[str]]]:
        """The study's results in Orthanc per source SOP Instance UID: ``{"SC": [orthanc ids], "SR": [...]}``.
        A result is attributed to the source instance it references (SC: Source Image Sequence; SR: its
        evidence and image references)."""
        instances = self.orthanc.study_instances(study_uid)
        # Without ``sources``: any instance referenced (the source may never have been in this PACS: a
        # modality sent it straight to the gateway).
        known = set(sources) if sources is not None else None
        found: dict[str, dict[str, list[str]]] = {}
        for inst in instances:
            kind = "SC" if inst["SOPClassUID"] == SC_CLASS else "SR" if inst["SOPClassUID"] in SR_CLASSES else None
            if kind is None:
                continue
            refs = _referenced_uids(self.orthanc.get(f"/instances/{inst['ID']}/tags?simplify"))
            refs = refs & known if known is not None else refs
            for source in refs or {"(unreferenced)"}:
                found.setdefault(source, {"SC": [], "SR": []})[kind].append(inst["ID"])
        return found

    def wait_for_results(self, study_uid: str, sources: Iterable[str], *, timeout_s: float = 180,
                         settle_s: float = 0.0) -> dict[str, dict[str, list[str]]]:
        """Poll Orthanc until every source has an SC and an SR (then ``settle_s`` more, for late duplicates)."""
        wanted = set(sources)
        deadline = time.monotonic() + timeout_s
        found: dict[str, dict[str, list[str]]] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):        # Orthanc down on purpose: keep polling
                found = self.results(study_uid, wanted)
            if all(found.get(s, {}).get("SC") and found.get(s, {}).get("SR") for s in wanted):
                break
            time.sleep(0.5)
        if settle_s:
            time.sleep(settle_s)
            found = self.results(study_uid, wanted)
        return found

    def receipts_from_gateway(self) -> dict[str, int]:
        """How many times Orthanc received each SOP Instance UID from the gateway (re-deliveries included)."""
        counts: dict[str, int] = {}
        for r in self.orthanc.receipts():
            if r["remote_aet"] == GATEWAY_AET:
                counts[r["SOPInstanceUID"]] = counts.get(r["SOPInstanceUID"], 0) + 1
        return counts

    def check_exactly_once(self, study_uid: str, sources: Iterable[str],
                           records: Mapping[str, list[dict[str, Any]]] | None = None) -> list[str]:
        """What breaks "assessed exactly once, its results in the PACS exactly once" for these source instances:
        one completed record each, and one SC and one SR each in the study, each received once (empty: holds).
        ``records``: ``records_by_instance()`` when the caller already has it."""
        wanted = set(sources)
        problems = []
        by_instance = records if records is not None else self.records_by_instance()
        for source in sorted(wanted):
            rows = by_instance.get(source, [])
            if len(rows) != 1 or rows[0].get("status") != "completed":
                problems.append(f"{source}: {len(rows)} record(s) {[r.get('status') for r in rows]}")
        found = self.results(study_uid, wanted)
        counts = self.receipts_from_gateway()
        uids = {i["ID"]: i["SOPInstanceUID"] for i in self.orthanc.study_instances(study_uid)}
        for source in sorted(wanted):
            got = found.get(source, {"SC": [], "SR": []})
            for kind in ("SC", "SR"):
                if len(got[kind]) != 1:
                    problems.append(f"{source}: {len(got[kind])} {kind} in the PACS")
                for oid in got[kind]:
                    if counts.get(uids.get(oid, ""), 0) != 1:
                        problems.append(f"{source}: its {kind} received {counts.get(uids.get(oid, ''), 0)} times")
        if "(unreferenced)" in found:
            problems.append(f"results referencing no source instance: {found['(unreferenced)']}")
        return problems

    def records(self) -> list[dict[str, Any]]:
        """The deployment's table rows of this hospital (one scan, paginated; plain values)."""
        from boto3.dynamodb.types import TypeDeserializer

        de = TypeDeserializer()
        stack = self.deployment.stack
        rows = []
        for page in stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.outputs["ResultsTableName"]):
            for item in page["Items"]:
                row = {k: de.deserialize(v) for k, v in item.items()}
                if row.get("hospital_id") == self.hospital_id:
                    rows.append(row)
        return rows

    def records_by_instance(self) -> dict[str, list[dict[str, Any]]]:
        by: dict[str, list[dict[str, Any]]] = {}
        for row in self.records():
            by.setdefault(str(row.get("sop_instance_uid")), []).append(row)
        return by

    def object_keys(self) -> list[str]:
        """Every key under the hospital's folders in both buckets (versions included)."""
        s3 = self.deployment.stack.client("s3")
        keys = []
        for bucket in (self.access.input_bucket, self.access.results_bucket):
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                keys += [v["Key"] for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                         if f"/{self.hospital_id}/" in f"/{v['Key']}"]
        return keys

    def spool_names(self) -> list[str]:
        """Every file and folder name in the gateway's spool (what an operator's ``ls`` shows)."""
        root = Path(self.gateway.config["spool_dir"])
        return [str(p.relative_to(root)) for p in root.rglob("*")] if root.exists() else []


def _referenced_uids(tags: Any) -> set[str]:
    """Every ReferencedSOPInstanceUID anywhere in Orthanc's simplified tags of one instance."""
    found: set[str] = set()
    if isinstance(tags, Mapping):
        for key, value in tags.items():
            if key == "ReferencedSOPInstanceUID" and isinstance(value, str):
                found.add(value)
            else:
                found |= _referenced_uids(value)
    elif isinstance(tags, list):
        for value in tags:
            found |= _referenced_uids(value)
    return found
