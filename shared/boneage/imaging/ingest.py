"""``ingest``: bytes from a hospital -> one normalised radiograph plus metadata, or a Rejection.

The one entry point the service and the CLI call. It sniffs the format (DICOM Part 10, a bare
DICOM dataset, PNG, JPEG), enforces the size limits before decoding, reads the image and its
metadata, then lets explicit upload metadata override what the file says.
"""

from __future__ import annotations

import contextlib
import logging
import warnings as pywarnings
from collections.abc import Iterator, Mapping

from boneage.errors import Reason, Rejection
from boneage.imaging import dicom, raster
from boneage.imaging.limits import Limits
from boneage.imaging.metadata import AgeEvidence, UploadMetadata, parse_upload_metadata, resolve_age
from boneage.imaging.types import Radiograph, StudyMetadata

MIN_TARGET_LONG_SIDE = 16
# The long side the service asks for: 600 px serves the clinical model (512 px detector, 299 px hand
# crops) and lets a 2500 px JPEG 2000 decode at resolution level 2 (~50 ms) instead of 1 (~160 ms);
# see docs/imaging.md. Here, below both, because the engine calibrates int8 at this size too.
SERVICE_TARGET_LONG_SIDE = 600
AGE_DECIMALS = 1                   # chronological age is kept to 0.1 month


def ingest(data: bytes, *, metadata: Mapping[str, str] | None = None,
           limits: Limits | None = None, target_long_side: int | None = 1024) -> Radiograph:
    """Read one radiograph. ``target_long_side`` caps the returned image's long side (None keeps
    the stored size); ``meta.decode_scale`` says by how much it was reduced. Ingest is not told the
    upload's name (an object key or a path may carry identifiers, so it cannot leak into messages
    from here); the caller keeps it for its own records. ``limits`` defaults to the documented ``Limits()``; callers pass the configured
ones (ingest never reads the environment). Raises ``Rejection`` for anything the sender can fix."""
    limits = limits if limits is not None else Limits()
    if target_long_side is not None and target_long_side < MIN_TARGET_LONG_SIDE:
        raise ValueError(f"target_long_side must be None or >= {MIN_TARGET_LONG_SIDE}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("ingest() takes the file's bytes")
    data = bytes(data)
    if len(data) > limits.max_file_bytes:
        raise Rejection(Reason.TOO_LARGE,
                        f"the file is {len(data)} bytes; the limit is {limits.max_file_bytes}")
    if not data:
        raise Rejection(Reason.NOT_AN_IMAGE, "the file is empty")
    upload = parse_upload_metadata(metadata)
    with _quiet():
        fmt = raster.sniff(data)
        if fmt is not None:
            pixels, meta = raster.read(data, fmt, limits, target_long_side)
            radiograph = Radiograph(pixels, meta)
            evidence = AgeEvidence()
        elif dicom.looks_like_dicom(data):
            image = dicom.read(data, limits, target_long_side)
            radiograph = Radiograph(image.pixels, image.meta, image.dataset)
            evidence = image.age
        else:
            raise Rejection(Reason.NOT_AN_IMAGE, "the file is not DICOM, PNG or JPEG")
    apply_upload_metadata(radiograph.meta, evidence, upload)
    return radiograph


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence pydicom's and Pillow's warnings *and* pydicom's logger while reading: both quote
    malformed header values (birth dates, names) and would put PHI in the function's logs. What
    matters ends up, without values, in ``meta.warnings``."""
    loggers = [logging.getLogger(name) for name in ("pydicom", "PIL")]
    saved = [lg.disabled for lg in loggers]
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore")
        for lg in loggers:
            lg.disabled = True
        try:
            yield
        finally:
            for lg, was in zip(loggers, saved):
                lg.disabled = was


def apply_upload_metadata(meta: StudyMetadata, evidence: AgeEvidence, upload: UploadMetadata) -> None:
    """Upload values win over the file's; the age is resolved from both."""
    if "sex" in upload.given:
        meta.sex = upload.sex
        meta.sex_source = "metadata" if upload.sex is not None else None
    age = resolve_age(evidence, upload)
    # 0.1 month (~3 days) is finer than any bone age reading needs; 0.01 month is 0.3 days, which
    # with the study date would give back the birth date.
    meta.chronological_age_months = None if age.months is None else round(age.months, AGE_DECIMALS)
    meta.age_source, meta.age_reason = age.source, age.reason
    if age.source == "PatientAge":
        meta.warnings.append("age from PatientAge, which is truncated to whole units")
    if upload.laterality is not None:
        meta.laterality, meta.laterality_source = upload.laterality, "metadata"
    if upload.height_cm is not None:
        meta.patient_height_cm = upload.height_cm
    if upload.study_ref is not None:
        meta.study_reference = upload.study_ref
    elif meta.study_reference is None and meta.accession_number:
        meta.study_reference = meta.accession_number
