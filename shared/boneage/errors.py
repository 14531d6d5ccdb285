"""The two kinds of failure the service knows.

``Rejection`` is the input's fault: the user can act on it, retrying will not help. It carries a
stable ``reason`` code (documented in the README) and a human message. ``TransientFault`` is ours or
a dependency's: the caller should retry (the Lambda handler re-raises it so Lambda retries and, in
the end, the event lands in the dead-letter queue).
"""

from __future__ import annotations

from enum import StrEnum


class BoneAgeError(Exception):
    """Base class of every error this package raises on purpose."""


class Rejection(BoneAgeError):
    """The input cannot be assessed; ``reason`` is a stable code, ``message`` says why to a person."""

    def __init__(self, reason: Reason | str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message}


class TransientFault(BoneAgeError):
    """A retryable fault (a dependency unavailable, a throttle); never the input's fault."""


class Reason(StrEnum):
    """Stable reason codes. Add, never rename: hospitals filter and count on them.

    A ``StrEnum``: each member *is* its string (``Reason.TOO_LARGE == "too_large"``), so records,
    JSON, notifications and DynamoDB items carry the plain code."""

    # ingest (imaging)
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
    CORRUPT_PIXEL_DATA = "corrupt_pixel_data"
    MISSING_PIXEL_DATA = "missing_pixel_data"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MODALITY = "unsupported_modality"
    MULTI_FRAME = "multi_frame"
    UNSUPPORTED_PHOTOMETRIC = "unsupported_photometric"
    EMPTY_IMAGE = "empty_image"
    INVALID_METADATA = "invalid_metadata"
    # quality control (model)
    NO_HAND_FOUND = "no_hand_found"
    MULTIPLE_HANDS = "multiple_hands"
    SKELETALLY_MATURE = "skeletally_mature"
    # service
    UNKNOWN_HOSPITAL = "unknown_hospital"
    OBJECT_NOT_FOUND = "object_not_found"      # the upload was deleted (or its version expired) before we read it
    # the principal that put the object (the S3 event's userIdentity) is not one registered for the
    # hospital whose folder it is in, or the event names none; never read, never told to that hospital
    UPLOADER_MISMATCH = "uploader_mismatch"
