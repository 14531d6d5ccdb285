"""The ports of the upload use case (``boneage.processor``): what it needs from the world, as Protocols.

Each port is named as the adapter that implements it on AWS (``boneage.adapters``: ``s3.ObjectReader``,
``store.ResultStore``, ``reports.ReportWriter``, ``sns.Publisher``, ``registry.UploaderRegistry``) or in the domain
(``service.AssessmentService``); ``boneage.fakes`` implements every one in memory for the use-case
tests. The contract a store must keep (conditional claim with a lease, finish only by the claim's
owner, one notification per status) is written down here and pinned for both implementations by
``tests/unit/handler/test_port_contracts.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from boneage.notification import OutgoingMessage
from boneage.result import AssessmentResult
from boneage.upload import Claim, FetchedObject, StoredRecord, Upload


class ObjectReader(Protocol):
    """The uploaded objects (the input bucket)."""

    def current_version(self, bucket: str, key: str) -> str | None:
        """The version id of the object now at ``key`` (None: no versioning, or the object is gone)."""
        ...

    def fetch(self, bucket: str, key: str, version_id: str | None) -> FetchedObject:
        """Exactly that version; ``Rejection`` (``object_not_found``, ``too_large``) when it cannot be assessed."""
        ...


class ResultStore(Protocol):
    """One record per upload, every write conditional so duplicate deliveries cannot double up."""

    def read(self, upload_id: str) -> StoredRecord | None:
        """The upload's record as it stands now (a consistent read); None when there is none."""
        ...

    def stuck(self, *, now: float, older_than_s: int, limit: int) -> list[StoredRecord]:
        """Up to ``limit`` records still ``processing`` whose lease ended more than ``older_than_s`` ago."""
        ...

    def claim(self, upload: Upload, hospital_id: str | None, *, now: float, lease_seconds: int) -> Claim:
        """Own the upload for ``lease_seconds`` unless another delivery holds a live lease or it finished
        (``completed``/``rejected``); a ``failed`` record may be claimed again. Counts the attempt."""
        ...

    def finish(self, claim: Claim, result: AssessmentResult, *, now: float,
               report_keys: Mapping[str, str] | None = None, notify_lease_seconds: int = 0) -> StoredRecord | None:
        """Write the terminal result if ``claim`` still holds the upload; None when another delivery took
        it over. With ``notify_lease_seconds`` the same write takes the notification lease."""
        ...

    def release(self, claim: Claim) -> None:
        """Best effort: end the claim's lease so a retry can claim at once."""
        ...

    def record_failure(self, upload: Upload, hospital_id: str | None, *, fault: str, now: float,
                       model_version: str = "") -> StoredRecord | None:
        """Mark the upload ``failed``; None when a result stands or another delivery holds a live claim."""
        ...

    def claim_notification(self, upload_id: str, status: str, *, now: float, lease_seconds: int) -> bool:
        """The right to publish ``status``; False if it went out or another delivery is publishing it."""
        ...

    def release_notification(self, upload_id: str) -> None:
        """Best effort: give the right to publish back after a failed publish."""
        ...

    def mark_notified(self, upload_id: str, status: str, *, now: float) -> bool:
        """Remember the notification of ``status`` went out; False if the record moved on meanwhile."""
        ...


class ReportWriter(Protocol):
    """Report files, and links to them that a notification may carry."""

    @property
    def url_expiry_s(self) -> int: ...

    def write(self, hospital_id: str, upload_id: str, files: Mapping[str, bytes]) -> dict[str, str]:
        """Store every file; returns {file name: key}. Writing the same upload again overwrites."""
        ...

    def url(self, key: str) -> str:
        """A link to one stored file, valid for ``url_expiry_s``."""
        ...


class Publisher(Protocol):
    """The results topic."""

    def publish(self, message: OutgoingMessage) -> str:
        """Send one message; returns its id."""
        ...


class UploaderRegistry(Protocol):
    """Which principals may put uploads in a hospital's folder (written by the hospital's onboarding stack)."""

    def principals(self, hospital_id: str, *, fresh: bool = False) -> frozenset[str] | None:
        """The IAM unique ids (RoleId ``AROA...``, user id ``AIDA...``) registered for ``hospital_id``; None
        when the hospital is not onboarded. ``fresh`` bypasses any cache (asked before a rejection, so a
        re-created role is not refused on a stale entry). ``TransientFault`` when the registry is down."""
        ...


class AssessmentService(Protocol):
    """Bytes in, a result and report files out (``boneage.service.AssessmentService``)."""

    @property
    def model_version(self) -> str: ...

    def assess(self, data: bytes, *, source: str, metadata: Mapping[str, str] | None = None,
               want_reports: bool = True) -> tuple[AssessmentResult, dict[str, bytes]]: ...

    def assess_many(self, items: list[tuple[bytes, str, Mapping[str, str] | None]], *,
                    want_reports: bool = True) -> list[tuple[AssessmentResult, dict[str, bytes]]]: ...
