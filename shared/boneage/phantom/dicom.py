"""DICOM Part 10 copies of phantoms: CR or DX, 12-bit, MONOCHROME2 or MONOCHROME1.

The file displays exactly like the PNG of the same sample: MONOCHROME1 stores inverted values
(with Presentation LUT Shape INVERSE on DX), so a reader that applies the photometric
interpretation recovers the PNG's image. Patient name and ID are synthetic; dates come from the
sample's labels; UIDs are derived from the set's seed and the sample id, so files are
byte-for-byte reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
)

BITS_STORED = 12
MAX_VALUE = (1 << BITS_STORED) - 1
SOP_CLASS = {"CR": ComputedRadiographyImageStorage, "DX": DigitalXRayImageStorageForPresentation}


def _uid(seed: int, sample_id: int, what: str) -> str:
    # A 2.25.<128-bit integer> UID (the UUID-derived root, ITU-T X.667) from a hash of the set seed,
    # sample and role: reproducible, and unique across sets. pydicom's generate_uid(prefix=None)
    # would ignore its entropy sources and return a random UUID.
    digest = hashlib.sha256(f"boneage-phantom/{seed}/{sample_id}/{what}".encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _patient_age(months: float) -> str:
    """DICOM Age String: nnnD/W/M/Y, truncated, in the largest unit that keeps detail."""
    if months < 1.0:
        return f"{int(months * 365.25 / 12 / 7):03d}W"
    if months < 24.0:
        return f"{int(months):03d}M"
    return f"{int(months // 12):03d}Y"


def build_dataset(img: np.ndarray, labels: Mapping[str, Any], *, seed: int) -> Dataset:
    modality = str(labels.get("modality") or "DX")
    photometric = str(labels.get("photometric") or "MONOCHROME2")
    sample_id = int(labels["id"])
    sop_class = SOP_CLASS[modality]
    sop_instance = _uid(seed, sample_id, "sop")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = labels["study_date"]
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = labels.get("study_time", "120000")
    ds.AccessionNumber = f"PH{seed % 10000:04d}{sample_id:06d}"
    ds.Modality = modality
    ds.Manufacturer = "boneage phantom generator"
    ds.InstitutionName = "Synthetic"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "XR HAND BONE AGE (PHANTOM)"
    ds.SeriesDescription = "PA hand"
    ds.PatientName = f"PHANTOM^{seed}-{sample_id}"
    ds.PatientID = f"PH-{seed}-{sample_id}"
    ds.PatientBirthDate = labels["birth_date"]
    ds.PatientSex = labels["sex"]
    ds.PatientAge = _patient_age(float(labels["chronological_age_months"]))
    ds.BodyPartExamined = "HAND"
    ds.ViewPosition = "PA"
    ds.StudyInstanceUID = _uid(seed, sample_id, "study")
    ds.SeriesInstanceUID = _uid(seed, sample_id, "series")
    ds.StudyID = f"{sample_id}"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    kind = labels.get("kind")
    laterality = {"right": "R", "two_hands": "B", "non_hand": "U"}.get(str(kind), "L")
    # Fingers up, viewed as facing the patient: columns run to the patient's left, rows to the feet.
    ds.PatientOrientation = ["L", "F"]
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"  # markers and text on phantoms never identify anyone

    rows, cols = img.shape
    stored = np.rint(np.clip(img, 0.0, 1.0) * MAX_VALUE).astype(np.uint16)
    if photometric == "MONOCHROME1":
        stored = (MAX_VALUE - stored).astype(np.uint16)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    spacing = float(labels["pixel_spacing_mm"])
    ds.PixelSpacing = [f"{spacing:.6g}", f"{spacing:.6g}"]
    ds.ImagerPixelSpacing = [f"{spacing:.6g}", f"{spacing:.6g}"]
    ds.WindowCenter = f"{MAX_VALUE // 2 + 1}"
    ds.WindowWidth = f"{MAX_VALUE + 1}"
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImageLaterality = laterality
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "US"
        ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
        ds.DetectorType = "DIRECT"
        ds.PixelIntensityRelationship = "LIN"
        ds.PixelIntensityRelationshipSign = -1 if photometric == "MONOCHROME1" else 1
        # SNOMED CT codes from pydicom's copy of the DICOM PS3.16 code dictionary.
        ds.AnatomicRegionSequence = _coded(codes.SCT.Hand)
        ds.ViewCodeSequence = _coded(codes.SCT.PosteroAnterior)
        ds.PositionerType = ""
        ds.AcquisitionContextSequence = []
    else:
        if laterality in ("L", "R"):  # a CR Laterality is L or R only; absent for both hands or no hand
            ds.Laterality = laterality
    ds.PixelData = stored.tobytes()
    return ds


def _coded(code) -> list[Dataset]:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return [item]


def write_dicom(path: Path, img: np.ndarray, labels: Mapping[str, Any], *, seed: int) -> None:
    build_dataset(img, labels, seed=seed).save_as(path, enforce_file_format=True)
