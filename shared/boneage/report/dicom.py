"""DICOM results for the hospital's PACS: a Secondary Capture of the PNG report and a Structured Report.

Both go into a NEW series of the SOURCE study (same StudyInstanceUID, fresh Series and SOP Instance
UIDs, the source image referenced), built with highdicom so the IOD modules are complete. The
patient module is copied from the source dataset on purpose: these objects go back to the
hospital's own archive, which files them by patient. That identity lives only inside these two
objects, never in logs, records, notifications or object keys.

SR content follows TID 1500 (Measurement Report) with one measurement group for the hand. DICOM
has no standard codes for bone age, chronological age or bone age SDS that we could verify
offline, so those concepts use a private coding scheme (``99BONEAGE``, declared in the SR's Coding
Scheme Identification Sequence, as PS3.16 allows); units are UCUM and the finding site is SNOMED CT
(both from pydicom's code dictionary). The model version is the measurement's algorithm
identification.
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import JPEGLSLossless
from pydicom.valuerep import DA, DT, TM

from boneage.clinical.text import DEMO_DISCLAIMER
from boneage.result import AssessmentResult

MANUFACTURER = "boneage (open source)"
ALGORITHM_NAME = "boneage two-stage hand detector + bone age regressor"
SC_SERIES_NUMBER = 9001
SR_SERIES_NUMBER = 9002

PRIVATE_SCHEME = "99BONEAGE"


def _code(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=PRIVATE_SCHEME, meaning=meaning)


CODE_PROCEDURE = _code("BAA", "Bone age assessment")
CODE_BONE_AGE = _code("BA", "Bone age")
CODE_BONE_AGE_LOW = _code("BA-L90", "Bone age 90% interval lower limit")
CODE_BONE_AGE_HIGH = _code("BA-H90", "Bone age 90% interval upper limit")
CODE_CHRONOLOGICAL_AGE = _code("CA", "Chronological age")
CODE_BA_MINUS_CA = _code("BA-CA", "Bone age minus chronological age")
CODE_SDS = _code("BA-SDS", "Bone age standard deviation score")
CODE_ADULT_HEIGHT = _code("PAH", "Predicted adult height")
CODE_INTERPRETATION = _code("BA-INT", "Bone age interpretation")
CODE_FLAGS = {
    "delayed": _code("BA-DEL", "Delayed bone age"),
    "advanced": _code("BA-ADV", "Advanced bone age"),
    "within_normal_limits": _code("BA-WNL", "Bone age within normal limits"),
}
UNIT_MONTH = hd.sr.CodedConcept.from_code(codes.UCUM.Month)
UNIT_NONE = hd.sr.CodedConcept.from_code(codes.UCUM.NoUnits)
UNIT_CM = hd.sr.CodedConcept(value="cm", scheme_designator="UCUM", meaning="centimeter")


def _series_description(result: AssessmentResult, what: str) -> str:
    # LO is at most 64 characters.
    text = f"Bone age {what}" + (" - NOT FOR CLINICAL USE" if result.demo_model else "")
    return text[:64]


def _software_version(result: AssessmentResult) -> str:
    return (result.model_version or "unknown")[:64]


# Type 2 attributes highdicom copies from the source: present-but-empty is valid DICOM, absent is
# not, and real modalities do leave some out.
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
                 "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
_TYPE1_NEEDED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


class UnusableSource(ValueError):
    """The source dataset lacks a UID that results must reference; no DICOM results are made."""


def prepare_source(source: Dataset) -> Dataset:
    """A shallow copy of ``source`` with missing Type 2 attributes present and empty."""
    missing = [k for k in _TYPE1_NEEDED if not str(source.get(k, "") or "").strip()]
    if missing:
        raise UnusableSource(f"source dataset lacks {', '.join(missing)}")
    ds = Dataset()
    ds.update(source)
    for keyword in _TYPE2_COPIED:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def _source_reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item


def _encode(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


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
        series_description=_series_description(result, "report image"),
        software_versions=_software_version(result),
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
    return _encode(sc)


def _coding_scheme_identification() -> Dataset:
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "boneage service local codes"
    item.CodingSchemeResponsibleOrganization = "boneage open-source project"
    return item


@dataclass(frozen=True)
class SRIdentity:
    """What is new in every SR: its own UIDs and the moment it was made. Tests inject fixed ones."""

    series_instance_uid: str
    sop_instance_uid: str
    tracking_uid: str
    observer_uid: str
    created: datetime.datetime

    @classmethod
    def fresh(cls) -> "SRIdentity":
        return cls(hd.UID(), hd.UID(), hd.UID(), hd.UID(), datetime.datetime.now())


def sr_measurements(result: AssessmentResult) -> list[tuple[hd.sr.CodedConcept, float, hd.sr.CodedConcept]]:
    """(concept, value, unit) of each NUM item the SR carries for ``result``, in content order."""
    found: list[tuple[hd.sr.CodedConcept, float, hd.sr.CodedConcept]] = []
    if result.bone_age_months is not None:
        found.append((CODE_BONE_AGE, result.bone_age_months, UNIT_MONTH))
    if result.bone_age_interval_months:
        found.append((CODE_BONE_AGE_LOW, result.bone_age_interval_months[0], UNIT_MONTH))
        found.append((CODE_BONE_AGE_HIGH, result.bone_age_interval_months[1], UNIT_MONTH))
    if result.chronological_age_months is not None:
        found.append((CODE_CHRONOLOGICAL_AGE, result.chronological_age_months, UNIT_MONTH))
        if result.bone_age_months is not None:
            found.append((CODE_BA_MINUS_CA, result.bone_age_months - result.chronological_age_months, UNIT_MONTH))
    if result.sds is not None:
        found.append((CODE_SDS, result.sds, UNIT_NONE))
    if result.predicted_adult_height_cm is not None:
        found.append((CODE_ADULT_HEIGHT, result.predicted_adult_height_cm, UNIT_CM))
    return [(name, float(round(value, 4)), unit) for name, value, unit in found]


def build_structured_report_dataset(source: Dataset, result: AssessmentResult, identity: SRIdentity,
                                    values: list[float] | None = None) -> hd.sr.ComprehensiveSR:
    """The SR built from scratch by highdicom: the reference the per-shape templates are made from.

    ``values`` replaces the measurement values (same count and order as ``sr_measurements``); the
    template builder uses it to plant recognisable numbers.
    """
    source = prepare_source(source)
    algorithm = hd.sr.AlgorithmIdentification(name=ALGORITHM_NAME, version=_software_version(result))
    side = {"L": codes.SCT.Left, "R": codes.SCT.Right}.get(result.laterality or "")
    finding_site = hd.sr.FindingSite(anatomic_location=codes.SCT.BoneStructureOfHand, laterality=side)

    items = sr_measurements(result)
    if values is not None:
        items = [(name, value, unit) for (name, _, unit), value in zip(items, values, strict=True)]
    measurements = [hd.sr.Measurement(name=name, value=value, unit=unit, algorithm_id=algorithm)
                    for name, value, unit in items]
    evaluations = []
    if result.interpretation in CODE_FLAGS:
        evaluations.append(hd.sr.QualitativeEvaluation(name=CODE_INTERPRETATION, value=CODE_FLAGS[result.interpretation]))

    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=identity.tracking_uid, identifier="left hand bone age"),
        algorithm_id=algorithm,
        finding_sites=[finding_site],
        measurements=measurements,
        qualitative_evaluations=evaluations or None,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=identity.observer_uid, name="boneage", manufacturer_name=MANUFACTURER,
            model_name=_software_version(result),
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CODE_PROCEDURE,
        imaging_measurements=[group],
    )
    created = identity.created
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report,
        series_instance_uid=identity.series_instance_uid,
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=identity.sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,       # machine output, nobody has verified it
        is_verified=False,
        series_description=_series_description(result, "structured report"),
        content_date=created.date(),
        content_time=created.time(),
    )
    # highdicom stamps these with its own clock; one moment for the whole object, the injected one.
    sr.InstanceCreationDate = DA(created.date())
    sr.InstanceCreationTime = TM(created.time())
    sr.ContributingEquipmentSequence[-1].ContributionDateTime = DT(created)
    sr.CodingSchemeIdentificationSequence = [_coding_scheme_identification()]
    sr.SoftwareVersions = _software_version(result)
    return sr


def build_structured_report_from_scratch(source: Dataset, result: AssessmentResult,
                                         identity: SRIdentity | None = None) -> bytes:
    """The encoded SR as highdicom builds it (~100 ms): the reference for the template path."""
    return _encode(build_structured_report_dataset(source, result, identity or SRIdentity.fresh()))


def build_structured_report(source: Dataset, result: AssessmentResult, identity: SRIdentity | None = None) -> bytes:
    """A Comprehensive SR (TID 1500) with bone age, its interval, CA, BA - CA, SDS, flag, adult height.

    Byte for byte what ``build_structured_report_from_scratch`` gives for the same identity, made
    from a template per result shape (``sr_template``) in a few milliseconds.
    """
    from boneage.report.sr_template import render_structured_report

    return render_structured_report(source, result, identity or SRIdentity.fresh())
