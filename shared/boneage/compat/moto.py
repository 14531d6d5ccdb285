"""What moto's S3 event notifications leave out, filled in for the dev stack (tested on moto 5.2; bounded
below 5.3 by ``tests/unit/compat/test_compat_moto.py``).

AWS's S3 event records name who put the object (``userIdentity.principalId``: ``AWS:<RoleId>:<session>``
for an assumed role, ``AWS:<UserId>`` for an IAM user), and the assessment function refuses an upload
whose putter is not registered for the folder's hospital (``uploader_mismatch``). Moto's records carry
no ``userIdentity`` at all (``moto.s3.notifications._get_s3_event``), so on the emulator every upload
would be refused. ``stamp_uploader_identity()`` makes the in-process moto server add it, from the
credentials that signed the request, resolved with moto's own STS and IAM backends as AWS would: an
assumed role's session, an IAM user, or else the account itself (the emulator's default credentials,
an operator). It changes nothing else; the production check is not touched. Development only: called
by ``boneage.devstack.LocalStack.start``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

SUPPORTED = ((5, 2), (5, 3))         # [lower, upper) of moto's major.minor
_caller = threading.local()          # moto's threaded server handles each request on its own thread
_installed = False
_lock = threading.Lock()
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def access_key_of(headers: Any, query: str = "") -> str | None:
    """The access key id that signed a request (SigV4 header, or a presigned URL's X-Amz-Credential)."""
    found = _CREDENTIAL.search(str(headers.get("Authorization", "") or ""))
    if found:
        return found.group(1)
    presigned = re.search(r"X-Amz-Credential=([^%/&]+)", query)
    return presigned.group(1) if presigned else None


def principal_id(access_key: str | None, account: str, partition: str = "aws") -> str:
    """``userIdentity.principalId`` as S3 writes it for the principal that owns ``access_key``."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    if access_key:
        assumed = sts_backends[account][partition].get_assumed_role_from_access_key(access_key)
        if assumed is not None:
            return f"AWS:{assumed.user_id}"
        user = iam_backends[account][partition].get_user_from_access_key_id(access_key)
        if user is not None:
            return f"AWS:{user.id}"
    return account          # the account's own (root) credentials: no role, no user


def stamp_uploader_identity(account: str) -> None:
    """Install, once per process, the request-caller capture and the ``userIdentity`` on S3 events."""
    global _installed
    with _lock:
        if _installed:
            return
        import moto
        from moto.s3 import notifications
        from moto.s3.responses import S3Response

        version = tuple(int(p) for p in moto.__version__.split(".")[:2])
        if not SUPPORTED[0] <= version < SUPPORTED[1]:
            raise RuntimeError(f"boneage.compat.moto is written for moto {SUPPORTED[0]} to {SUPPORTED[1]} "
                               f"(exclusive), found {moto.__version__}: check _get_s3_event and update the range")

        def capturing(original: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(self: Any, request: Any, full_url: str, headers: Any) -> Any:
                _caller.access_key = access_key_of(request.headers, full_url.partition("?")[2])
                try:
                    return original(self, request, full_url, headers)
                finally:
                    _caller.access_key = None
            return wrapper

        make_event = notifications._get_s3_event

        def with_identity(*args: Any, **kwargs: Any) -> dict[str, Any]:
            event = make_event(*args, **kwargs)
            principal = principal_id(getattr(_caller, "access_key", None), account)
            for record in event.get("Records", []):
                record.setdefault("userIdentity", {"principalId": principal})
            return event

        S3Response.key_response = capturing(S3Response.key_response)
        S3Response.bucket_response = capturing(S3Response.bucket_response)
        notifications._get_s3_event = with_identity
        _installed = True


__all__ = ["SUPPORTED", "access_key_of", "principal_id", "stamp_uploader_identity"]
