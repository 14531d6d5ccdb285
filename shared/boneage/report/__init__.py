"""Report artifacts for one assessment: a PNG report and, for DICOM sources, DICOM objects for PACS.

``build_reports(radiograph, output, result)`` returns file name -> bytes: always ``report.png``;
``report_sc.dcm`` (Secondary Capture of the PNG) and ``report_sr.dcm`` (Comprehensive SR) when the
source was DICOM (``radiograph.dataset`` is set). PNG/JPEG uploads have no study to attach to.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from boneage.imaging.types import Radiograph
from boneage.model.types import ModelOutput
from boneage.result import REPORT_SC, REPORT_SR, AssessmentResult

REPORT_PNG = "report.png"

logger = logging.getLogger(__name__)

# The PNG's deflate and the SC's JPEG-LS encode run in C with the GIL released; on a 2-vCPU Lambda
# they overlap with building the SR, which is pure Python. One worker, created at import (init).
_encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-encode")


def build_reports(radiograph: Radiograph, output: ModelOutput, result: AssessmentResult) -> dict[str, bytes]:
    from boneage.report.png import render_report

    rendered = render_report(radiograph, output, result)
    rgb = rendered.rgb          # made here, before two threads could both ask for it first
    if radiograph.dataset is None:
        return {REPORT_PNG: rendered.png_bytes()}

    from boneage.report.dicom import build_secondary_capture
    from boneage.report.sr import build_sr

    png = _encoder.submit(rendered.png_bytes)
    sc = _encoder.submit(build_secondary_capture, radiograph.dataset, rgb, result)
    files = {REPORT_PNG: b""}           # keeps the PNG first in the mapping
    # The PNG is the report; a source header odd enough to defeat the DICOM builders must not
    # cost the clinician the result. Say so in the result; log the type only (messages may
    # quote header values, and headers carry patient identity).
    try:
        sr = build_sr(radiograph.dataset, result)
        files[REPORT_SC] = sc.result()
        files[REPORT_SR] = sr
    except Exception as exc:  # noqa: BLE001 - any builder failure degrades to PNG only
        files.pop(REPORT_SC, None)
        logger.warning("DICOM results not produced", extra={"error_type": type(exc).__name__})
        result.warnings.append(f"DICOM results (SC/SR) not produced: {type(exc).__name__}")
    files[REPORT_PNG] = png.result()
    return files


__all__ = ["REPORT_PNG", "REPORT_SC", "REPORT_SR", "build_reports"]
