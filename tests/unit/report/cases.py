"""Test inputs for report tests: a synthetic hand-like radiograph and a DICOM source built from a seed.

The DICOM carries a known patient name, ID and birth date so tests can check where they end up.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from boneage.imaging.types import Radiograph, StudyMetadata
from boneage.model.types import Box, ModelOutput
from boneage.result import COMPLETED, AssessmentResult

PATIENT_NAME = "Zzyzxa^Quentinella"
PATIENT_ID = "PID-83746521"
BIRTH_DATE = "20140917"
STUDY_DATE = "20241203"
ACCESSION = "ACC20241203X"
CR_IMAGE_STORAGE = ComputedRadiographyImageStorage
assert CR_IMAGE_STORAGE != CTImageStorage


def synthetic_hand(rng: np.random.Generator, h: int = 256, w: int = 200) -> np.ndarray:
    """A dark field with bright finger-like bars and noise: enough to see where boxes land."""
    img = rng.normal(0.08, 0.02, (h, w)).astype(np.float32)
    img[int(h * 0.55):int(h * 0.95), int(w * 0.25):int(w * 0.75)] += 0.5      # palm / carpus
    for k in range(4):
        x = int(w * (0.28 + 0.12 * k))
        img[int(h * 0.12):int(h * 0.58), x:x + int(w * 0.06)] += 0.6           # fingers
    return np.clip(img, 0.0, 1.0)


def source_dataset(rng: np.random.Generator, rows: int = 256, cols: int = 200,
                   image: np.ndarray | None = None) -> Dataset:
    """A CR image of a left hand with full patient/study/series modules, as a PACS would send."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    sop_uid = generate_uid(entropy_srcs=[str(rng.integers(1 << 62))])
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[str(rng.integers(1 << 62))])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(rng.integers(1 << 62))])
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "F"
    ds.StudyDate = STUDY_DATE
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = ACCESSION
    ds.ReferringPhysicianName = ""
    ds.Modality = "CR"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "HAND"
    ds.ImageLaterality = "L"
    ds.Laterality = "L"
    ds.PatientOrientation = ["A", "F"]
    ds.Manufacturer = "Synthetic"
    if image is not None:
        rows, cols = image.shape
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = "PA"
    img = synthetic_hand(rng, rows, cols) if image is None else np.clip(image, 0.0, 1.0)
    pixels = (img * 4095).astype(np.uint16)
    ds.PixelData = pixels.tobytes()
    return ds


def _ca_months(birth: str, study: str) -> float:
    b = dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    s = dt.date(int(study[:4]), int(study[4:6]), int(study[6:]))
    return (s - b).days / 30.4375


def make_case(rng: np.random.Generator, *, dicom: bool = True, demo: bool = True, sex: str | None = "F",
              with_age: bool = True):
    """Radiograph + ModelOutput + AssessmentResult as the service would hand them to build_reports."""
    ds = source_dataset(rng) if dicom else None
    pixels = synthetic_hand(rng)
    ca = _ca_months(BIRTH_DATE, STUDY_DATE) if with_age else None
    meta = StudyMetadata(source_format="dicom" if dicom else "png", rows=256, columns=200,
                         modality="CR" if dicom else None, laterality="L", sex=sex,
                         sex_source="PatientSex" if sex else None, chronological_age_months=ca,
                         study_instance_uid=ds.StudyInstanceUID if ds else None,
                         sop_instance_uid=ds.SOPInstanceUID if ds else None,
                         accession_number=ACCESSION if ds else None,
                         study_reference=ACCESSION if ds else "ref-42")
    if ds is not None:
        del ds.PixelData   # ingest hands over the dataset without its pixel data
    radiograph = Radiograph(pixels=pixels, meta=meta, dataset=ds)
    output = ModelOutput(
        bone_age_months=131.0, interval_months=(123.0, 139.0), sex_used=sex,
        hand_box=Box(40.0, 20.0, 160.0, 245.0, 0.97),
        regions=[Box(50.0, 150.0, 150.0, 240.0, 0.9, "carpals"), Box(55.0, 25.0, 150.0, 140.0, 0.9, "phalanges")],
        qc={"hand_count": 1}, model_version="demo-0.1+abc123",
    )
    from boneage.clinical import interpret, predict_adult_height

    interp = interpret(output.bone_age_months, output.interval_months, sex, ca)
    height = predict_adult_height(140.0, output.bone_age_months, ca, sex)
    result = AssessmentResult(
        source="s3://uploads/hospital-a/abc.dcm" if dicom else "upload.png", status=COMPLETED,
        bone_age_months=131.0, bone_age_interval_months=[123.0, 139.0], sex=sex,
        sex_source=meta.sex_source, chronological_age_months=None if ca is None else round(ca, 1),
        sds=None if interp.sds is None else round(interp.sds, 2),
        sds_interval=None if interp.sds_interval is None else [round(v, 2) for v in interp.sds_interval],
        sds_reason=interp.sds_reason, interpretation=interp.flag, interpretation_reason=interp.flag_reason,
        predicted_adult_height_cm=None if height.cm is None else round(height.cm, 1),
        adult_height_table=height.table, adult_height_reason=height.reason, patient_height_cm=140.0,
        laterality="L", model_version=output.model_version, demo_model=demo,
        study_instance_uid=meta.study_instance_uid, sop_instance_uid=meta.sop_instance_uid,
        accession_number=meta.accession_number, study_reference=meta.study_reference,
        modality=meta.modality,
    )
    return radiograph, output, result
