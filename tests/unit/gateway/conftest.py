"""In-memory stand-ins for S3 and SQS with the semantics the gateway relies on (conditional puts,
object versions, outages), and a configuration on a temporary spool."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest

from boneage.gateway.config import GatewayConfig


class ClientError(Exception):
    """Shaped like botocore's: ``response["Error"]["Code"]``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


class FakeS3:
    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
        self.down = 0               # the next N calls fail as if S3 were unreachable
        self.puts = 0
        self._ids = itertools.count(1)

    def _maybe_down(self) -> None:
        if self.down:
            self.down -= 1
            raise ConnectionError("S3 unreachable")

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, IfNoneMatch: str | None = None, **_: Any) -> dict:
        self._maybe_down()
        self.puts += 1
        existing = self.versions.setdefault((Bucket, Key), [])
        if IfNoneMatch == "*" and existing:
            raise ClientError("PreconditionFailed")
        version = f"v{next(self._ids)}"
        existing.append((version, bytes(Body)))
        return {"VersionId": version}

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict:
        self._maybe_down()
        try:
            return {"Body": io.BytesIO(self.versions[(Bucket, Key)][-1][1])}
        except KeyError:
            raise ClientError("NoSuchKey") from None


class FakeSQS:
    def __init__(self) -> None:
        self.messages: dict[str, str] = {}          # receipt handle -> body
        self.deleted: list[str] = []
        self.released: list[str] = []
        self._ids = itertools.count(1)

    def send(self, body: str) -> str:
        handle = f"rh-{next(self._ids)}"
        self.messages[handle] = body
        return handle

    def receive_message(self, **_: Any) -> dict:
        return {"Messages": [{"Body": b, "ReceiptHandle": h} for h, b in self.messages.items()]}

    def delete_message(self, *, ReceiptHandle: str, **_: Any) -> None:
        self.deleted.append(ReceiptHandle)
        self.messages.pop(ReceiptHandle, None)

    def change_message_visibility(self, *, ReceiptHandle: str, **_: Any) -> None:
        self.released.append(ReceiptHandle)


def config_dict(spool_dir: Any, **overrides: Any) -> dict[str, Any]:
    raw = {
        "hospital_id": "st-mary", "ae_title": "BONEAGE", "listen_host": "127.0.0.1", "listen_port": 0,
        "allowed_calling_aets": ["MODALITY", "PACS"], "spool_dir": str(spool_dir),
        "aws": {"region": "us-east-1", "upload_bucket": "input", "results_bucket": "results",
                "results_queue_url": "https://sqs.local/results-st-mary"},
        "pacs": {"host": "127.0.0.1", "port": 104, "ae_title": "PACS"},
        "retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.05, "max_delivery_attempts": 3},
    }
    raw.update(overrides)
    return raw


@pytest.fixture
def config(tmp_path) -> GatewayConfig:
    return GatewayConfig.from_dict(config_dict(tmp_path / "spool"))


@pytest.fixture
def s3() -> FakeS3:
    return FakeS3()


@pytest.fixture
def sqs() -> FakeSQS:
    return FakeSQS()


def instance(sop_uid: str = "1.2.826.0.1.3680043.8.498.101", study_uid: str = "1.2.826.0.1.3680043.8.498.100",
             *, patient: str = "DOE^JANE", sop_class: str | None = None, manufacturer: str | None = None) -> bytes:
    """A small Part 10 header (no pixels: the gateway never reads them) with a patient name in it: a DX
    image unless ``sop_class`` says otherwise."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    sop_class = sop_class or DigitalXRayImageStorageForPresentation
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = study_uid + ".1"
    ds.PatientName = patient
    ds.PatientID = "MRN-0001"
    ds.AccessionNumber = "ACC-42"
    ds.Modality = "DX"
    if manufacturer is not None:
        ds.Manufacturer = manufacturer
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
