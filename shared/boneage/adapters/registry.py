"""Who may upload for a hospital: one SSM parameter per hospital, written by its onboarding stack.

``<prefix><hospital_id>`` (the function's ``UPLOADER_REGISTRY`` prefix, ``/<stack>/hospitals/`` in
``template.yaml``) holds the IAM unique ids of the principals allowed to put under
``incoming/<hospital_id>/``, comma-separated: the RoleId (``AROA...``) of the hospital's gateway role
(``boneage.onboarding``), optionally IAM user ids (``AIDA...``). A unique id, not an ARN: a role deleted
and re-created under the same name gets a new one, so an old session cannot pass as the new role.

Entries are cached for ``ttl_s`` (one SSM read per hospital per container and period; the function
reads only ``ssm:GetParameter`` on that prefix). A missing parameter is never cached: a hospital onboarded
a minute ago is found on its first upload.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from boneage.adapters._errors import dependency, error_code


def parse_principals(value: str) -> frozenset[str]:
    """The parameter's value: comma-separated unique ids, blanks ignored."""
    return frozenset(part.strip() for part in value.split(",") if part.strip())


class UploaderRegistry:
    """``boneage.ports.UploaderRegistry`` on SSM Parameter Store."""

    def __init__(self, ssm_client: Any, prefix: str, *, ttl_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError(f"the registry prefix must start and end with '/', got {prefix!r}")
        self._ssm = ssm_client
        self.prefix = prefix
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def name_for(self, hospital_id: str) -> str:
        return f"{self.prefix}{hospital_id}"

    def principals(self, hospital_id: str, *, fresh: bool = False) -> frozenset[str] | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(hospital_id)
        if cached is not None and not fresh and now - cached[0] < self._ttl_s:
            return cached[1]
        with dependency("ssm"):
            try:
                value = self._ssm.get_parameter(Name=self.name_for(hospital_id))["Parameter"]["Value"]
            except ClientError as exc:
                if error_code(exc) == "ParameterNotFound":
                    with self._lock:
                        self._cache.pop(hospital_id, None)
                    return None
                raise
        principals = parse_principals(value)
        with self._lock:
            self._cache[hospital_id] = (now, principals)
        return principals
