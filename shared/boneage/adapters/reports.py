"""Report files (PNG, DICOM SC/SR) in the results bucket, and presigned links to them.

Keys carry no PHI: ``reports/<hospital_id>/<upload_id[:16]>/<file>``. The prefix lives in the
results bucket, never under the input prefix, so writing a report can never trigger an assessment.
Objects are encrypted by the bucket's default SSE-KMS key; we name the algorithm explicitly so a
misconfigured bucket fails loudly instead of storing plaintext.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from boneage.adapters._errors import dependency

_CONTENT_TYPES = {".png": "image/png", ".dcm": "application/dicom", ".json": "application/json"}


class ReportWriter:
    """``boneage.ports.ReportWriter`` on the results bucket."""

    def __init__(self, s3_client: Any, bucket: str, *, prefix: str = "reports/", url_expiry_s: int = 3600) -> None:
        self._s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix
        self.url_expiry_s = url_expiry_s

    def key_for(self, hospital_id: str, upload_id: str, name: str) -> str:
        return f"{self.prefix}{hospital_id}/{upload_id[:16]}/{name}"

    def write(self, hospital_id: str, upload_id: str, files: Mapping[str, bytes]) -> dict[str, str]:
        """Upload every file, concurrently (each PUT is a network round trip; boto3 clients are
        thread-safe); returns {file name: object key}. Re-writing the same upload overwrites. The first
        failure is raised once every PUT has ended, so a retry rewrites the whole set."""

        def put(item: tuple[str, bytes]) -> tuple[str, str]:
            name, body = item
            key = self.key_for(hospital_id, upload_id, name)
            ext = "." + name.rsplit(".", 1)[-1] if "." in name else ""
            with dependency("s3"):
                self._s3.put_object(
                    Bucket=self.bucket, Key=key, Body=body,
                    ContentType=_CONTENT_TYPES.get(ext, "application/octet-stream"),
                    ServerSideEncryption="aws:kms",
                )
            return name, key

        items = sorted(files.items())
        if len(items) <= 1:
            return dict(map(put, items))
        with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="report-put") as pool:
            return dict(pool.map(put, items))

    def url(self, key: str) -> str:
        """A presigned GET link; signing is local, so it cannot fail on a dependency."""
        return str(self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.url_expiry_s))
