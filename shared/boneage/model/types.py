"""What the model returns for one image, independent of backend (eager, TorchScript, AOTInductor, IPEX)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from boneage.errors import Reason


@dataclass
class Box:
    x0: float   # in the pixel coordinates of the image the model was given
    y0: float
    x1: float
    y1: float
    score: float
    label: str = "hand"


class QcRejection(NamedTuple):
    """Quality control's decision not to report a bone age: a stable reason code and why, for a person."""

    reason: Reason
    message: str


@dataclass
class ModelOutput:
    bone_age_months: float | None
    interval_months: tuple[float, float] | None     # 90 % interval
    sex_used: str | None                            # "M" | "F" | None (sex-agnostic estimate)
    predicted_sex: str | None = None                # when sex was unknown and the model predicted it
    predicted_sex_probability_male: float | None = None
    hand_box: Box | None = None
    regions: list[Box] = field(default_factory=list)
    qc: dict[str, Any] = field(default_factory=dict)  # mirrored (bool), inverted (bool), hand_count, hand_score, ...
    rejection: QcRejection | None = None                # set when QC rejects the image
    model_version: str = ""

    @property
    def estimate_months(self) -> float | None:
        """The model's bone age before the reference cap: ``qc["bone_age_estimate_months"]`` where the
        pipeline reported one (a hand past the top of the reference, or rejected as mature), else
        ``bone_age_months``. What calibration fits against; the report shows ``bone_age_months``."""
        return self.qc.get("bone_age_estimate_months", self.bone_age_months)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
