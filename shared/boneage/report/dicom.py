"""The DICOM Secondary Capture of the PNG report, for the hospital's PACS (the SR is in ``sr``).

Both DICOM results go into a NEW series of the SOURCE study (same StudyInstanceUID, fresh Series and
SOP Instance UIDs, the source image referenced), built with highdicom so the IOD modules are
complete. The patient module is copied from the source dataset on purpose: these objects go back
to the hospital's own archive, which files them by patient. That identity lives only inside these
two objects, never in logs, records, notifications or object keys. What the two share (the
prepared source, series texts, encoding) is in ``derived``.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import JPEGLSLossless

from boneage.clinical.text import DEMO_DISCLAIMER
from boneage.report.derived import MANUFACTURER, describe_series, encode, prepare_source, software_version
from boneage.result import AssessmentResult

SC_SERIES_NUMBER = 9001


def _source_reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item


def burned_in_annotation(source: Dataset, result: AssessmentResult) -> str:
    """The SC's BurnedInAnnotation, true to its pixels. The report page prints the study reference
    (the accession number or the hospital's study-ref, which identify the study and may carry more)
    and embeds the radiograph, whose own pixels may carry text: "NO" only when the page shows no
    reference and the source says its pixels carry none. De-identification tools trust this flag."""
    shows_reference = bool(result.study_reference or result.accession_number)
    source_clean = str(source.get("BurnedInAnnotation", "") or "").strip().upper() == "NO"
    return "NO" if source_clean and not shows_reference else "YES"


def build_secondary_capture(source: Dataset, report_rgb: np.ndarray, result: AssessmentResult) -> bytes:
    """The PNG report as an RGB Secondary Capture image in a new series of the source study."""
    source = prepare_source(source)
    pixels = np.ascontiguousarray(report_rgb, dtype=np.uint8)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=hd.UID(),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        # highdicom insists on an orientation in the PATIENT frame; a report page has none, so the
        # placeholder is replaced by an empty (Type 2) value below.
        patient_orientation=("A", "F"),
        series_description=describe_series(result, "report image"),
        software_versions=software_version(result),
        manufacturer_model_name="boneage",
        # JPEG-LS lossless: the exact pixels in ~180 kB instead of 2.9 MB uncompressed, encoded
        # (CharLS, via pyjpegls) in about a third of the time RLE Lossless takes, at half its size.
        # Lossless JPEG-LS is in the conformance statements of the mainstream PACS and viewers.
        transfer_syntax_uid=JPEGLSLossless,
    )
    # The report is a derived picture; it names no patient (identity stays in the header only).
    sc.PatientOrientation = ""
    # Laterality is Type 2C (hands are paired): the side assessed, or empty when unknown.
    sc.Laterality = result.laterality if result.laterality in ("L", "R") else ""
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = burned_in_annotation(source, result)
    sc.SourceImageSequence = [_source_reference(source)]
    sc.DerivationDescription = "Bone age report rendered from the referenced radiograph"
    sc.ImageComments = (DEMO_DISCLAIMER if result.demo_model else "Bone age report")[:10240]
    return encode(sc)
