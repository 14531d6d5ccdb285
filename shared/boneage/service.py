"""The assessment use case: bytes in, one ``AssessmentResult`` (and report files) out.

Ingest -> model (detection, quality control, regression) -> clinical interpretation -> reports.
Nothing here knows about Lambda, S3 or the command line; the handler and the CLI both call
``AssessmentService.assess``. Input problems come back as a ``rejected`` result with a stable reason
code; faults (a model that raises, a dependency that is down) propagate so the caller can retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from boneage.clinical import interpret, predict_adult_height
from boneage.clinical.text import MATURITY_DISAGREEMENT_TEXT, near_maturity_text
from boneage.errors import Rejection
from boneage.imaging import Limits, ingest
from boneage.imaging.ingest import SERVICE_TARGET_LONG_SIDE
from boneage.imaging.types import Radiograph
from boneage.model.types import ModelOutput
from boneage.report import build_reports
from boneage.result import COMPLETED, REJECTED, AssessmentResult

logger = logging.getLogger(__name__)


class Assessor(Protocol):
    model_version: str
    demo: bool

    def assess(self, image: np.ndarray, sex: str | None) -> ModelOutput: ...

    def assess_batch(self, images: list[np.ndarray], sexes: list[str | None]) -> list[ModelOutput]: ...


ReportBuilder = Any  # callable(radiograph, output, result) -> dict[str, bytes]


DEFAULT_TARGET_LONG_SIDE = SERVICE_TARGET_LONG_SIDE     # see imaging.ingest


class AssessmentService:
    """Runs one upload (or a batch) through the whole domain pipeline.

    ``limits`` defaults to the documented ``Limits()``; the handler and the CLI pass the configured
    ones (``boneage.config.Settings.ingest``): nothing here reads the environment."""

    def __init__(
        self,
        assessor: Assessor,
        *,
        limits: Limits | None = None,
        target_long_side: int | None = DEFAULT_TARGET_LONG_SIDE,
        report_builder: ReportBuilder | None = None,
    ) -> None:
        self.assessor = assessor
        self.limits = limits or Limits()
        self.target_long_side = target_long_side
        self._report_builder = report_builder

    @property
    def model_version(self) -> str:
        return getattr(self.assessor, "model_version", "")

    @property
    def demo_model(self) -> bool:
        return bool(getattr(self.assessor, "demo", True))

    def _blank(self, source: str) -> AssessmentResult:
        return AssessmentResult(source=source, status=REJECTED, model_version=self.model_version,
                                demo_model=self.demo_model)

    def _ingest(self, data: bytes, metadata: Mapping[str, str] | None,
                timings: dict[str, float]) -> Radiograph | Rejection:
        t0 = time.perf_counter()
        try:
            return ingest(data, metadata=metadata, limits=self.limits,
                          target_long_side=self.target_long_side)
        except Rejection as rejection:
            return rejection
        finally:
            timings["decode"] = round((time.perf_counter() - t0) * 1000, 2)

    def assess(
        self,
        data: bytes,
        *,
        source: str,
        metadata: Mapping[str, str] | None = None,
        want_reports: bool = True,
    ) -> tuple[AssessmentResult, dict[str, bytes]]:
        """Assess one image; see ``assess_many`` for several at once."""
        return self.assess_many([(data, source, metadata)], want_reports=want_reports)[0]

    def assess_many(
        self,
        items: list[tuple[bytes, str, Mapping[str, str] | None]],
        *,
        want_reports: bool = True,
    ) -> list[tuple[AssessmentResult, dict[str, bytes]]]:
        """Assess several uploads; the model runs them as one batch (an SQS batch, a multi-record event)."""
        timings = [dict() for _ in items]
        ingested = [self._ingest(data, metadata, t) for (data, _, metadata), t in zip(items, timings)]
        ok = [i for i, r in enumerate(ingested) if isinstance(r, Radiograph)]
        outputs: dict[int, ModelOutput] = {}
        if ok:
            t0 = time.perf_counter()
            batch = self.assessor.assess_batch([ingested[i].pixels for i in ok], [ingested[i].meta.sex for i in ok])
            model_ms = round((time.perf_counter() - t0) * 1000 / len(ok), 2)
            for i, out in zip(ok, batch):
                outputs[i] = out
                timings[i]["model"] = model_ms
                for stage, ms in (out.qc.get("timings_ms") or {}).items():
                    timings[i][stage] = ms

        results = []
        for i, ((_, source, _), radiograph) in enumerate(zip(items, ingested)):
            if isinstance(radiograph, Rejection):
                result = self._blank(source)
                result.reason, result.message = radiograph.reason, radiograph.message
                result.timings_ms = timings[i]
                results.append((result, {}))
                continue
            results.append(self._complete(radiograph, outputs[i], source, timings[i], want_reports))
        return results

    def _complete(self, radiograph: Radiograph, output: ModelOutput, source: str,
                  timings: dict[str, float], want_reports: bool) -> tuple[AssessmentResult, dict[str, bytes]]:
        meta = radiograph.meta
        result = self._blank(source)
        result.model_version = output.model_version or self.model_version
        result.timings_ms = timings
        result.sex, result.sex_source = meta.sex, meta.sex_source
        result.chronological_age_months = meta.chronological_age_months
        result.age_source = meta.age_source
        result.patient_height_cm = meta.patient_height_cm
        result.laterality = meta.laterality
        result.modality = meta.modality
        result.study_instance_uid = meta.study_instance_uid
        result.series_instance_uid = meta.series_instance_uid
        result.sop_instance_uid = meta.sop_instance_uid
        result.accession_number = meta.accession_number
        result.study_reference = meta.study_reference or meta.accession_number
        result.warnings = list(meta.warnings)
        result.mirrored = bool(output.qc.get("mirrored", False))
        result.inverted_corrected = bool(output.qc.get("inverted", False))
        if output.hand_box is not None:
            s = meta.decode_scale
            b = output.hand_box
            result.hand_box = [round(v * s, 1) for v in (b.x0, b.y0, b.x1, b.y1)]
        if result.mirrored:
            result.laterality = "R"
            result.warnings.append("right hand detected: the image was mirrored before assessment")
        if output.predicted_sex and meta.sex is None:
            result.predicted_sex = output.predicted_sex

        if output.rejection is not None:
            result.reason, result.message = output.rejection.reason, output.rejection.message
            return result, {}

        t0 = time.perf_counter()
        result.status = COMPLETED
        result.bone_age_months = _round(output.bone_age_months)
        if output.interval_months is not None:
            result.bone_age_interval_months = [_round(v) for v in output.interval_months]
        if meta.sex is None:
            result.warnings.append("sex unknown: sex-agnostic bone age estimate, no SDS")
        if output.qc.get("near_skeletal_maturity"):
            result.near_skeletal_maturity = True
            result.warnings.append(near_maturity_text(meta.sex))
        if output.qc.get("maturity_not_judged") == "bone_age_estimate":
            result.warnings.append(MATURITY_DISAGREEMENT_TEXT)
        result.message = "bone age estimated by a demonstration model, not for clinical use" if result.demo_model \
            else "bone age estimated"
        interpretation = interpret(output.bone_age_months, output.interval_months, meta.sex,
                                   meta.chronological_age_months)
        result.sds = _round(interpretation.sds, 2)
        result.sds_interval = [_round(v, 2) for v in interpretation.sds_interval] if interpretation.sds_interval else None
        result.sds_reason = interpretation.sds_reason
        result.interpretation = interpretation.flag
        result.interpretation_reason = interpretation.flag_reason
        height = predict_adult_height(meta.patient_height_cm, output.bone_age_months,
                                      meta.chronological_age_months, meta.sex)
        result.predicted_adult_height_cm = _round(height.cm)
        result.adult_height_table = height.table
        result.adult_height_reason = height.reason
        timings["interpret"] = round((time.perf_counter() - t0) * 1000, 2)

        reports: dict[str, bytes] = {}
        if want_reports:
            t0 = time.perf_counter()
            builder = self._report_builder or build_reports
            reports = builder(radiograph, output, result)
            result.report_files = sorted(reports)
            timings["report"] = round((time.perf_counter() - t0) * 1000, 2)
        return result, reports


def _round(value: float | None, ndigits: int = 1) -> float | None:
    return None if value is None else round(float(value), ndigits)
