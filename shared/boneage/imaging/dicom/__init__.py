"""DICOM ingest: parse with pydicom, check the header against our limits, decode, present.

One module per step, each catching what its library raises and mapping it to a typed Rejection:

- ``parse``: bytes -> pydicom ``Dataset`` (sniffing, the deflate bound) or ``not_an_image``;
- ``checks``: what can be refused from the header (modality, transfer syntax, one frame, the
  pixel ``Limits``, photometric interpretation, the compressed frame's own header);
- ``decode``: frame 0 -> stored samples (pydicom's plugins, reduced JPEG 2000, direct JPEG-LS);
- ``grey``: stored samples -> float32 image in [0, 1] (LUTs, window, inversion, reduction);
- ``attributes``: element access that survives malformed values, and the non-PHI metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from boneage.errors import Reason, Rejection
from boneage.imaging.dicom.attributes import ELEMENT_ERRORS, extract_metadata
from boneage.imaging.dicom.checks import ACCEPTED_MODALITIES, GREY, check_header
from boneage.imaging.dicom.decode import JPEG_LS_SYNTAXES, stored_samples
from boneage.imaging.dicom.grey import grey_transform, present
from boneage.imaging.dicom.parse import looks_like_dicom, parse
from boneage.imaging.limits import Limits
from boneage.imaging.metadata import AgeEvidence
from boneage.imaging.types import StudyMetadata

__all__ = ["ACCEPTED_MODALITIES", "JPEG_LS_SYNTAXES", "DicomImage", "check_header", "extract_metadata",
           "grey_transform", "looks_like_dicom", "parse", "read"]


@dataclass
class DicomImage:
    pixels: np.ndarray
    meta: StudyMetadata
    age: AgeEvidence
    dataset: Dataset


def read(data: bytes, limits: Limits, target_long_side: int | None) -> DicomImage:
    warnings: list[str] = []
    ds = parse(data, limits)
    try:
        check_header(ds, limits, warnings)
    except ELEMENT_ERRORS as exc:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA,
                        f"the image header is malformed ({type(exc).__name__})") from exc
    meta, age = extract_metadata(ds, warnings)
    grey_image = str(ds.PhotometricInterpretation).strip().upper() in GREY
    stored = stored_samples(ds, target_long_side if grey_image else None)
    image, scale = present(ds, stored, target_long_side, warnings)
    meta.decode_scale = scale
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            del ds[keyword]         # the dataset travels on for PACS results; the pixels do not
    return DicomImage(image, meta, age, ds)
