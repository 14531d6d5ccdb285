"""The assessment result: what the CLI prints, the DynamoDB record stores and notifications summarise.

Fields never include patient names, patient IDs or birth dates. ``status`` is one of
``completed`` (a bone age was estimated), ``rejected`` (the input's fault; ``reason`` says why) or
``failed`` (a fault on our side, recorded after retries are exhausted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

COMPLETED = "completed"
REJECTED = "rejected"
FAILED = "failed"

# What the service writes and publishes, here (the bottom layer) so that the on-premises gateway, which
# installs none of numpy, highdicom or the clinical tables, names them without copying them:
SCHEMA = "boneage.assessment.v1"            # the notification body's ``schema`` (``boneage.notification``)
REPORT_SC = "report_sc.dcm"                 # the DICOM results of a DICOM source (``boneage.report``)
REPORT_SR = "report_sr.dcm"
MANUFACTURER = "boneage (open source)"      # the SC's and the SR's Manufacturer: how our own objects are known


@dataclass
class AssessmentResult:
    source: str
    status: str
    reason: str | None = None
    message: str = ""
    bone_age_months: float | None = None
    bone_age_interval_months: list[float] | None = None     # [low, high], 90 %
    sex: str | None = None                                  # "M" | "F" | None
    sex_source: str | None = None                           # where the sex came from ("PatientSex", "metadata", ...) or None
    predicted_sex: str | None = None                        # the model's guess when sex was unknown (never used for SDS)
    chronological_age_months: float | None = None
    age_source: str | None = None
    sds: float | None = None
    sds_interval: list[float] | None = None
    sds_reason: str | None = None
    interpretation: str | None = None                       # "delayed" | "advanced" | "within_normal_limits" | None
    interpretation_reason: str | None = None
    predicted_adult_height_cm: float | None = None
    adult_height_table: str | None = None
    adult_height_reason: str | None = None
    patient_height_cm: float | None = None
    laterality: str | None = None
    mirrored: bool = False
    inverted_corrected: bool = False
    near_skeletal_maturity: bool = False                      # growth plates closing: bone age capped at the standards' end
    hand_box: list[float] | None = None                      # [x0, y0, x1, y1] in source-image pixels
    model_version: str = ""
    demo_model: bool = True                                   # True until weights trained on real radiographs
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    accession_number: str | None = None
    study_reference: str | None = None
    modality: str | None = None
    report_files: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
