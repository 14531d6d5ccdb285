"""What the DICOM gateway's tests, demo and benchmark share: its AWS side on the emulator, a switch
to cut that side off, DICOM instances, a PACS to deliver to, and the gateway as a real process.

- ``GatewayAws``: moto server on loopback with the gateway's upload bucket (versioned, like the
  template's), results bucket and results queue - or, with ``GatewayAws.on(stack, queue_url)``, the
  buckets of a deployed ``LocalStack`` and a hospital's results queue there.
- ``wait_for``: poll until a condition holds. A relay that cuts the network ("S3 unreachable for a
  while") is ``boneage.devstack.proxy.TcpProxy``; a free port, ``boneage.devstack.orthanc.free_port``.
- ``dx_instance``: a small DX radiograph as Part 10 bytes in any transfer syntax ingest reads.
- ``StorageSCP``: a pynetdicom C-STORE SCP standing in for the PACS; it keeps what it was sent.
- ``publish_result``: what the service would publish for an upload, with an SC and an SR of the
  source study in the results bucket (for tests that leave the service out).
- ``GatewayProcess``: ``boneage gateway run`` as a subprocess (SIGKILL-able), its logs kept, and
  ``gateway_cli``: an operator command (``status``, ``resend``) answered as JSON.

Development only, like the rest of ``boneage.devstack``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boneage.devstack.orthanc import free_port, port_open
from boneage.devstack.stack import EMULATOR_ENV, REGION, ROOT, emulator_client
from boneage.result import REPORT_SC, REPORT_SR, SCHEMA
from boneage.upload import object_ref_for

__all__ = ["GatewayAws", "GatewayProcess", "StorageSCP", "dx_instance", "free_port", "gateway_cli", "publish_result",
           "wait_for", "write_config"]


def wait_for(predicate: Callable[[], Any], *, timeout_s: float = 30.0, interval_s: float = 0.1, what: str = "") -> Any:
    """Poll until ``predicate()`` is truthy; returns its value, or raises ``TimeoutError``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(interval_s)


@dataclass
class GatewayAws:
    """The gateway's side of AWS on the emulator."""

    endpoint: str
    upload_bucket: str
    results_bucket: str
    queue_url: str
    server: Any = None

    @classmethod
    def start(cls, *, hospital_id: str = "st-mary") -> GatewayAws:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3, sqs = emulator_client(endpoint, "s3"), emulator_client(endpoint, "sqs")
        suffix = uuid.uuid4().hex[:8]
        upload, results = f"gw-input-{suffix}", f"gw-results-{suffix}"
        for bucket in (upload, results):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=upload, VersioningConfiguration={"Status": "Enabled"})
        queue_url = sqs.create_queue(QueueName=f"results-{hospital_id}-{suffix}")["QueueUrl"]
        return cls(endpoint=endpoint, upload_bucket=upload, results_bucket=results, queue_url=queue_url, server=server)

    @classmethod
    def on(cls, stack: Any, queue_url: str) -> GatewayAws:
        """A deployed ``LocalStack``'s input and results buckets, and a hospital's results queue there."""
        return cls(endpoint=stack.endpoint, upload_bucket=stack.input_bucket,
                   results_bucket=stack.outputs["ResultsBucketName"], queue_url=queue_url)

    @classmethod
    def for_hospital(cls, access: Any) -> GatewayAws:
        """What onboarding gave a hospital (``boneage.devstack.hospitals.HospitalAccess``: its queue, the
        buckets); run the gateway with ``access.credentials`` so the uploads are the hospital role's."""
        return cls(endpoint=access.endpoint, upload_bucket=access.input_bucket,
                   results_bucket=access.results_bucket, queue_url=access.results_queue_url)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self, service: str) -> Any:
        return emulator_client(self.endpoint, service)

    def versions(self, prefix: str = "incoming/") -> dict[str, int]:
        """Object key -> number of versions under ``prefix`` in the upload bucket."""
        out: dict[str, int] = {}
        pages = self.client("s3").get_paginator("list_object_versions").paginate(Bucket=self.upload_bucket,
                                                                                 Prefix=prefix)
        for page in pages:
            for v in page.get("Versions", []):
                out[v["Key"]] = out.get(v["Key"], 0) + 1
        return out

    def config(self, spool_dir: Path, *, listen_port: int, hospital_id: str = "st-mary",
               endpoint_url: str | None = None, pacs: Mapping[str, Any] | None = None,
               **overrides: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "hospital_id": hospital_id, "ae_title": "BONEAGE", "listen_host": "127.0.0.1",
            "listen_port": listen_port, "allowed_calling_aets": ["MODALITY", "PACS", "STORESCU", "ECHOSCU"],
            "spool_dir": str(spool_dir),
            "aws": {"region": REGION, "endpoint_url": endpoint_url or self.endpoint,
                    "upload_bucket": self.upload_bucket, "results_bucket": self.results_bucket,
                    "results_queue_url": self.queue_url, "wait_time_s": 1, "visibility_timeout_s": 10},
            "retry": {"initial_backoff_s": 0.1, "max_backoff_s": 0.5, "max_delivery_attempts": 4},
        }
        if pacs is not None:
            raw["pacs"] = dict(pacs)
        raw.update(overrides)
        return raw


def write_config(path: Path, raw: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(raw, indent=2))
    return path


def dx_instance(seed: int, *, sop_uid: str, study_uid: str, ts: str | None = None, rows: int = 96,
                columns: int = 80, modality: str = "DX") -> bytes:
    """A small radiograph-like DX instance (with a patient module) as Part 10 bytes in ``ts``."""
    import numpy as np
    from pydicom import uid as dcm_uid

    from boneage.imaging.testing import base_dataset, encode_pixels, radiograph_like, to_bytes

    ts = ts or dcm_uid.ExplicitVRLittleEndian
    arr = radiograph_like(np.random.default_rng(seed), rows=rows, columns=columns)
    ds = base_dataset(rows, columns, bits_stored=12, modality=modality, tags={
        "SOPInstanceUID": sop_uid, "StudyInstanceUID": study_uid, "SeriesInstanceUID": f"{study_uid}.1",
        "PatientName": "PHANTOM^HAND", "PatientID": f"PH{seed:06d}", "PatientSex": "F", "PatientAge": "010Y",
        "AccessionNumber": f"A{seed:06d}", "BodyPartExamined": "HAND"})
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    encode_pixels(ds, arr, ts)
    return to_bytes(ds)


@dataclass
class StorageSCP:
    """A C-STORE SCP for any storage SOP class in any transfer syntax (pynetdicom): the test's PACS.
    ``received`` keeps (SOP Instance UID, StudyInstanceUID, SOP Class UID, transfer syntax) per store."""

    ae_title: str = "PACS"
    port: int = 0
    received: list[tuple[str, str, str, str]] = field(default_factory=list)
    server: Any = None

    def start(self) -> StorageSCP:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

        ae = AE(ae_title=self.ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)

        def handle(event: Any) -> int:
            ds = event.dataset
            self.received.append((str(ds.SOPInstanceUID), str(ds.StudyInstanceUID), str(ds.SOPClassUID),
                                  str(event.context.transfer_syntax)))
            return 0x0000

        self.port = self.port or free_port()
        self.server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle)])
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def as_pacs(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "ae_title": self.ae_title}


def _report_dataset(sop_class: str, *, study_uid: str, source_sop: str) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR" if sop_class.endswith(".88.33") else "OT"
    ds.PatientName = "PHANTOM^HAND"
    ds.ContentDescription = f"stand-in report for {source_sop[:8]}"
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def jpegls_secondary_capture(seed: int, *, study_uid: str, rows: int = 64, columns: int = 48) -> tuple[bytes, Any]:
    """A Secondary Capture like the service's report (RGB, JPEG-LS lossless) with seeded pixels; returns
    the file's bytes and the pixel array it must decode to."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, SecondaryCaptureImageStorage, generate_uid

    rng = np.random.default_rng(seed)
    # Smooth gradients plus noise: compressible, like a rendered report, and every value matters.
    base = np.add.outer(np.arange(rows), np.arange(columns))[..., None] * np.array([1, 2, 3])
    pixels = ((base + rng.integers(0, 4, size=(rows, columns, 3))) % 256).astype(np.uint8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study_uid, generate_uid(), "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 3, "RGB"
    ds.PlanarConfiguration, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 0, 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), pixels


def publish_result(aws: GatewayAws, *, upload_id: str, object_key: str, study_uid: str, source_sop: str = "",
                   hospital_id: str = "st-mary", status: str = "completed", reason: str | None = None,
                   envelope: bool = True) -> dict[str, Any]:
    """Put a stand-in SC and SR of ``study_uid`` in the results bucket and the service's message for
    them on the results queue (in SNS's envelope unless ``envelope=False``); returns the body."""
    from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage

    report_keys: dict[str, str] = {}
    if status == "completed":
        for name, sop_class in ((REPORT_SC, SecondaryCaptureImageStorage), (REPORT_SR, ComprehensiveSRStorage)):
            key = f"reports/{hospital_id}/{upload_id[:16]}/{name}"
            aws.client("s3").put_object(Bucket=aws.results_bucket, Key=key,
                                        Body=_report_dataset(sop_class, study_uid=study_uid, source_sop=source_sop))
            report_keys[name] = key
    body = {"schema": SCHEMA, "upload_id": upload_id, "status": status, "reason": reason,
            "object_ref": object_ref_for(aws.upload_bucket, object_key), "report_keys": report_keys,
            "study_instance_uid": study_uid}
    message = json.dumps(body)
    if envelope:
        message = json.dumps({"Type": "Notification", "MessageId": str(uuid.uuid4()), "Message": message,
                              "TopicArn": f"arn:aws:sns:{REGION}:123456789012:results"})
    aws.client("sqs").send_message(QueueUrl=aws.queue_url, MessageBody=message)
    return body


class GatewayProcess:
    """``boneage gateway run --config PATH`` as a child process, its stderr (JSON log lines) in a file."""

    def __init__(self, config_path: Path, *, log_path: Path | None = None) -> None:
        self.config_path = Path(config_path)
        self.log_path = log_path or self.config_path.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, ready_port: int | None = None, timeout_s: float = 60.0,
              credentials: Mapping[str, str] | None = None) -> GatewayProcess:
        """``credentials``: AWS_* variables to run with (a hospital's, from onboarding); the emulator's
        dummy ones otherwise."""
        env = {**os.environ, **EMULATOR_ENV, **(credentials or {}), "PYTHONPATH": str(ROOT / "shared")}
        log = open(self.log_path, "ab")     # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen([sys.executable, "-m", "boneage.cli", "gateway", "run", "--config",
                                      str(self.config_path)], stdout=log, stderr=log, env=env, cwd=str(ROOT))
        log.close()
        if ready_port is not None:
            def listening() -> bool:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"the gateway exited ({self.proc.returncode}): {self.log_tail(5)}")
                return port_open("127.0.0.1", ready_port)
            wait_for(listening, timeout_s=timeout_s, what="the gateway to listen")
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def logs(self) -> list[dict[str, Any]]:
        """The log's JSON lines, parsed."""
        out = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout_s)

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def gateway_cli(config_path: Path, action: str, *, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``boneage gateway <action> --config PATH --json`` (status, resend) in a child process: its JSON answer.
    ``env``: the child's whole environment (default: this one, with this checkout's package first)."""
    env = dict(env) if env is not None else {**os.environ}
    env["PYTHONPATH"] = str(ROOT / "shared")
    out = subprocess.run([sys.executable, "-m", "boneage.cli", "gateway", action, "--config", str(config_path),
                          "--json"], capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=120)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"boneage gateway {action} exited {out.returncode}: {out.stderr[-2000:]}")
    return json.loads(lines[-1])
