"""The demo's uploads: radiographs generated with the phantom (no real patient data anywhere), one per
case the demo shows (a DICOM girl, a PNG boy with user metadata, a right hand, a file that is not an
image). Shared by ``scripts/demo.py``, ``scripts/invoke_local.py`` and the integration tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SampleUpload:
    name: str                       # what the demo calls it; never part of the record
    hospital_id: str
    filename: str
    body: bytes
    metadata: dict[str, str]        # sent as x-amz-meta-* user metadata
    expect: str                     # the status the upload should end in

    @property
    def key(self) -> str:
        return f"incoming/{self.hospital_id}/{self.filename}"


def sample_uploads(seed: int = 7, *, size: int = 512, hospitals: tuple[str, str] = ("st-mary", "north-gen")
                   ) -> list[SampleUpload]:
    """The demo's uploads, generated from ``seed`` with the phantom (no real patient data anywhere).

    The DICOM girl carries a patient name, ID and birth date on purpose: none may reach the record,
    the notification, the logs or any key we write.
    """
    import numpy as np

    from boneage.imaging.testing import dicom_bytes, png_bytes
    from boneage.phantom import render_sample

    rng = np.random.default_rng(seed)
    girl, _ = render_sample(rng, kind="left", bone_age_months=96.0, male=False, size=size)
    boy, _ = render_sample(rng, kind="left", bone_age_months=132.0, male=True, size=size)
    right, _ = render_sample(rng, kind="right", bone_age_months=110.0, male=False, size=size)
    first, second = hospitals
    return [
        SampleUpload(
            "DICOM girl", first, "study-0001.dcm",
            dicom_bytes((girl * 4095).astype(np.uint16), bits_stored=12, modality="DX", tags={
                "PatientName": "Demo^Jane", "PatientID": "MRN-DEMO-0042", "PatientBirthDate": "20170301",
                "PatientSex": "F", "StudyDate": "20250315", "StudyTime": "101500", "StudyID": "1",
                "AccessionNumber": "ACC1001", "ReferringPhysicianName": "", "ImageLaterality": "L",
            }),
            {}, "completed"),
        SampleUpload(
            "PNG boy with metadata", second, "upload 2002.png",     # a space: arrives as '+' in the event
            png_bytes((boy * 255).astype(np.uint8)),
            {"sex": "M", "age-months": "126", "study-ref": "REF-2002", "height-cm": "142.5"}, "completed"),
        SampleUpload(
            "right hand", first, "study-0003.png",
            png_bytes((right * 255).astype(np.uint8)),
            {"sex": "F", "age-months": "104", "study-ref": "REF-0003"}, "completed"),
        SampleUpload(
            "not an image", second, "study-0004.png", b"%PDF-1.4 this is a scanned letter, not a radiograph\n",
            {"study-ref": "REF-0004"}, "rejected"),
    ]
