"""ReportWriter: every report file lands under its PHI-free key, uploaded concurrently, and one
failed PUT fails the set with a typed, retryable fault."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from boneage.adapters.reports import ReportWriter
from boneage.errors import TransientFault

FILES = {"report.png": b"\x89PNG" + b"p" * 4000, "report_sc.dcm": b"d" * 9000, "report_sr.dcm": b"s" * 700}


def test_every_file_is_stored_with_its_content_type_under_the_upload_prefix(aws: Any) -> None:
    writer = ReportWriter(aws.clients.s3, aws.settings.results_bucket)
    keys = writer.write("st-mary", "0123456789abcdef0123", FILES)
    assert keys == {name: f"reports/st-mary/0123456789abcdef/{name}" for name in FILES}
    for name, key in keys.items():
        obj = aws.clients.s3.get_object(Bucket=aws.settings.results_bucket, Key=key)
        assert obj["Body"].read() == FILES[name]
        assert obj["ContentType"] == ("image/png" if name.endswith(".png") else "application/dicom")


class _Recording:
    """An S3 client stand-in that records which threads PUT at once and fails one key on request."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail, self.active, self.most_at_once = fail, 0, 0
        self.lock, self.barrier = threading.Lock(), threading.Barrier(len(FILES), timeout=5)

    def put_object(self, **kw: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        with self.lock:
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
        self.barrier.wait()          # only passes when all PUTs are in flight together
        with self.lock:
            self.active -= 1
        if self.fail and kw["Key"].endswith(self.fail):
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "x"}}, "PutObject")
        return {}


def test_the_puts_run_concurrently() -> None:
    client = _Recording()
    ReportWriter(client, "bucket").write("h", "u" * 20, FILES)
    assert client.most_at_once == len(FILES)


def test_one_failed_put_raises_a_transient_fault_naming_s3() -> None:
    with pytest.raises(TransientFault, match="s3 unavailable: SlowDown"):
        ReportWriter(_Recording(fail="report_sr.dcm"), "bucket").write("h", "u" * 20, FILES)
