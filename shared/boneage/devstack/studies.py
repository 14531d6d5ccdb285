"""Phantom studies as a modality would send them: CR or DX Part 10 files with realistic, fake headers.

A ``PhantomStudy`` is one study (one StudyInstanceUID) of ``instances`` hand radiographs drawn by the
phantom (``boneage.phantom``: no real patient anywhere), each its own SOP instance in one series, with
the headers a hospital's console writes: patient name, ID, birth date, accession number, referring
physician, institution, station. Those identifying values are fake but shaped like real ones and unique
to the study, so a test can search the gateway's logs, spool file names and the object keys we write for
each of them (``phi``): none may appear there. Everything is derived from ``seed``, so the same seed
gives the same bytes (the "same study sent twice" fault).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MODALITIES = ("CR", "DX")
_GIVEN = ("Ottilie", "Benedikt", "Ysolde", "Casimir", "Marisol", "Tobiah", "Wilhelmina", "Leontyne")
_FAMILY = ("Quenneville", "Abernethy", "Strazzabosco", "Vandermolen", "Okonkwo", "Lindqvist", "Haverkamp")


def _uid(seed: int, what: str) -> str:
    # 2.25.<128-bit integer> (the UUID-derived root, ITU-T X.667) from a hash: reproducible and unique.
    digest = hashlib.sha256(f"boneage-devstack-study/{seed}/{what}".encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


@dataclass(frozen=True)
class PhantomInstance:
    sop_instance_uid: str
    sop_class_uid: str
    data: bytes                     # DICOM Part 10, explicit VR little endian

    def write(self, folder: Path, index: int) -> Path:
        # The file name carries no identity: a counter, as a console's export folder would not.
        path = folder / f"IM{index:05d}.dcm"
        path.write_bytes(self.data)
        return path


@dataclass(frozen=True)
class PhantomStudy:
    seed: int
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    patient_name: str
    patient_id: str
    birth_date: str
    accession_number: str
    instances: tuple[PhantomInstance, ...]

    @property
    def phi(self) -> tuple[str, ...]:
        """The identifying strings of this study that must never reach a log, a key or a record we write
        (the patient name in both the DICOM form and the readable one)."""
        family, given = self.patient_name.split("^")
        return (self.patient_name, family, given, self.patient_id, self.birth_date, self.accession_number)

    @property
    def sop_instance_uids(self) -> list[str]:
        return [i.sop_instance_uid for i in self.instances]

    def write(self, folder: Path) -> list[Path]:
        """The instances as files (``folder/IM00001.dcm`` ...), for storescu."""
        folder.mkdir(parents=True, exist_ok=True)
        return [inst.write(folder, i + 1) for i, inst in enumerate(self.instances)]

    def __iter__(self) -> Iterator[PhantomInstance]:
        return iter(self.instances)


def phantom_study(seed: int, *, instances: int = 1, modality: str = "DX", size: int = 256,
                  bone_age_months: float | None = None) -> PhantomStudy:
    """One study of ``instances`` left-hand phantoms from ``seed`` (``size`` pixels square; the model's
    input is smaller, so 256 keeps tests fast without changing what is assessed). ``bone_age_months``
    defaults to a school-age child's, which the service assesses rather than rejects."""
    import numpy as np
    from pydicom.dataset import Dataset

    from boneage.imaging.testing import to_bytes
    from boneage.phantom import render_sample
    from boneage.phantom.dicom import build_dataset

    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if instances < 1:
        raise ValueError("a study has at least one instance")
    rng = np.random.default_rng([int(seed), 11])
    male = bool(rng.random() < 0.5)
    study_date = dt.date(2025, 1, 6) + dt.timedelta(days=int(rng.integers(300)))
    # A child well inside the standards' range (6-12.5 years, bone age within a few months of age), so the
    # service assesses it: a random phantom may be skeletally mature, which is rejected and sends nothing back.
    if bone_age_months is None:
        bone_age_months = float(rng.uniform(72.0, 150.0))
    age_days = int(round((bone_age_months + float(rng.normal(0.0, 4.0))) * 365.25 / 12))
    birth = study_date - dt.timedelta(days=age_days)
    name = f"{_FAMILY[int(rng.integers(len(_FAMILY)))]}^{_GIVEN[int(rng.integers(len(_GIVEN)))]}"
    patient_id = f"MRN{int(rng.integers(10**7, 10**8))}"
    accession = f"ACC{int(rng.integers(10**8, 10**9))}"
    study_uid, series_uid = _uid(seed, "study"), _uid(seed, "series")
    built = []
    for i in range(instances):
        img, labels = render_sample(rng, kind="left", size=size, male=male,
                                    bone_age_months=bone_age_months)
        labels.update(id=i + 1, sex="M" if male else "F", study_date=study_date.strftime("%Y%m%d"),
                      birth_date=birth.strftime("%Y%m%d"), modality=modality, photometric="MONOCHROME2",
                      chronological_age_months=age_days / (365.25 / 12), study_time="093000")
        ds: Dataset = build_dataset(img, labels, seed=seed)
        sop_uid = _uid(seed, f"sop/{i}")
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.InstanceNumber = i + 1
        ds.StudyID = "1"
        ds.PatientName, ds.PatientID = name, patient_id
        ds.PatientBirthDate = birth.strftime("%Y%m%d")
        ds.AccessionNumber = accession
        ds.ReferringPhysicianName = "Brightwater^Imogen^^Dr"
        ds.InstitutionName = "Devstack Children's Hospital"
        ds.StationName = "XR-ROOM-3"
        ds.OperatorsName = "Pemberton^Rhys"
        built.append(PhantomInstance(sop_uid, str(ds.SOPClassUID), to_bytes(ds)))
    return PhantomStudy(seed=seed, study_instance_uid=study_uid, series_instance_uid=series_uid,
                        modality=modality, patient_name=name, patient_id=patient_id,
                        birth_date=birth.strftime("%Y%m%d"), accession_number=accession, instances=tuple(built))
