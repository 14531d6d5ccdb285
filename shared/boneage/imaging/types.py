"""What ingest hands to the rest of the service: one normalised image plus its metadata.

The image is float32 in [0, 1] with bright bone (MONOCHROME2 sense), already reduced to at most
the resolution the model needs. Metadata never carries patient names, IDs or birth dates: the birth
date is read only to compute the chronological age.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class StudyMetadata:
    source_format: str                      # "dicom" | "png" | "jpeg"
    rows: int | None = None                 # as stored in the file (before any reduction)
    columns: int | None = None
    transfer_syntax: str | None = None      # UID, DICOM only
    transfer_syntax_name: str | None = None
    photometric: str | None = None          # MONOCHROME1 / MONOCHROME2 / RGB / YBR_* / L / RGB (PIL modes for PNG/JPEG)
    bits_stored: int | None = None
    modality: str | None = None
    body_part: str | None = None
    laterality: str | None = None           # "L" | "R" | None
    laterality_source: str | None = None    # "ImageLaterality" | "Laterality" | "metadata" | None
    sex: str | None = None                  # "M" | "F" | None (unknown: never defaulted)
    sex_source: str | None = None           # "PatientSex" | "metadata" | "cli" | None
    chronological_age_months: float | None = None
    age_source: str | None = None           # "PatientBirthDate+StudyDate" | "PatientAge" | "metadata" | ...
    age_reason: str | None = None           # why the age is null, when it is
    pixel_spacing_mm: tuple[float, float] | None = None
    pixel_spacing_source: str | None = None  # "PixelSpacing" | "ImagerPixelSpacing" | ...
    patient_height_cm: float | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    accession_number: str | None = None
    study_reference: str | None = None      # a non-PHI reference the hospital chose (metadata), else accession
    decode_scale: float = 1.0               # stored size / returned size (e.g. 4.0 for a JPEG 2000 reduce=2)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["pixel_spacing_mm"] is not None:
            d["pixel_spacing_mm"] = list(d["pixel_spacing_mm"])
        return d


@dataclass
class Radiograph:
    pixels: np.ndarray                      # float32, 2-D, [0, 1], bright bone
    meta: StudyMetadata
    dataset: Any = None                     # the pydicom Dataset (pixel data dropped) for PACS results; None for PNG/JPEG
