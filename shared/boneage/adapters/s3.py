"""Read one uploaded object version, with the hospital's user metadata, from the input bucket."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from boneage.adapters._errors import dependency, error_code
from boneage.errors import Reason, Rejection
from boneage.upload import FetchedObject

_MISSING = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}


class ObjectReader:
    """``boneage.ports.ObjectReader`` on the input bucket: exactly the object version the event named,
    refusing objects too large to hold in memory."""

    def __init__(self, s3_client: Any, *, max_bytes: int) -> None:
        self._s3 = s3_client
        self._max_bytes = max_bytes

    def current_version(self, bucket: str, key: str) -> str | None:
        """The version id of the object now at ``key`` (None: no versioning, or the object is gone)."""
        with dependency("s3"):
            try:
                return self._s3.head_object(Bucket=bucket, Key=key).get("VersionId") or None
            except ClientError as exc:
                if error_code(exc) in _MISSING:
                    return None
                raise

    def fetch(self, bucket: str, key: str, version_id: str | None) -> FetchedObject:
        extra = {"VersionId": version_id} if version_id else {}
        # A Rejection raised inside passes through ``dependency`` untouched; any other AWS error
        # becomes a TransientFault.
        with dependency("s3"):
            try:
                # One round trip: the size is in the GET's headers, checked before the body is read.
                obj = self._s3.get_object(Bucket=bucket, Key=key, **extra)
                size = int(obj.get("ContentLength", 0))
                if size > self._max_bytes:
                    obj["Body"].close()
                    raise Rejection(
                        Reason.TOO_LARGE,
                        f"the upload is {size} bytes; the limit is {self._max_bytes} bytes",
                    )
                data = obj["Body"].read(self._max_bytes + 1)
                if len(data) > self._max_bytes:         # a body longer than its header said
                    raise Rejection(Reason.TOO_LARGE, f"the upload is over the {self._max_bytes}-byte limit")
            except ClientError as exc:
                if error_code(exc) in _MISSING:
                    raise Rejection(
                        Reason.OBJECT_NOT_FOUND,
                        "the uploaded object (or this version of it) no longer exists",
                    ) from exc
                raise
        return FetchedObject(
            data=data,
            version_id=obj.get("VersionId") or version_id,
            metadata={str(k).lower(): str(v) for k, v in (obj.get("Metadata") or {}).items()},
            content_type=obj.get("ContentType"),
        )
