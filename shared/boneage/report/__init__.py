"""Report artifacts for one assessment: a PNG report and, for DICOM sources, DICOM objects for PACS.

``build_reports(radiograph, output, result)`` returns file name -> bytes: always ``report.png``;
``report_sc.dcm`` (Secondary Capture of the PNG) and ``report_sr.dcm`` (Comprehensive SR) when the
source was DICOM (``radiograph.dataset`` is set). PNG/JPEG uploads have no study to attach to.
"""

from __future__ import annotations

from boneage.imaging.types import Radiograph
from boneage.model.types import ModelOutput
from boneage.result import AssessmentResult

REPORT_PNG = "report.png"
REPORT_SC = "report_sc.dcm"
REPORT_SR = "report_sr.dcm"


def build_reports(radiograph: Radiograph, output: ModelOutput, result: AssessmentResult) -> dict[str, bytes]:
    import numpy as np

    from boneage.report.png import render_report

    rendered = render_report(radiograph, output, result)
    files = {REPORT_PNG: rendered.png_bytes()}
    if radiograph.dataset is not None:
        from boneage.report.dicom import build_secondary_capture, build_structured_report

        files[REPORT_SC] = build_secondary_capture(radiograph.dataset, np.asarray(rendered.image), result)
        files[REPORT_SR] = build_structured_report(radiograph.dataset, result)
    return files


__all__ = ["REPORT_PNG", "REPORT_SC", "REPORT_SR", "build_reports"]
