"""The Structured Report from a template per result shape: highdicom's output in a few milliseconds.

highdicom builds a correct SR but spends ~100 ms of Python on it (deep copies, re-parsing its own
content tree, evidence search) and pydicom's writer another ~15 ms, against a 250 ms budget for
the whole assessment. Yet two SRs of the same *shape* (which optional items are present: interval,
CA, BA - CA, SDS, adult height, the interpretation flag, laterality, model version, demo flag)
differ only in a few leaf values. So each shape is built once by highdicom
(``dicom.build_structured_report_dataset``) from a skeleton source holding no patient data, with
sentinel UIDs, times and measurement values; the sentinels mark the slots. The template is kept
*encoded*: static runs of bytes, slots, and the sequences/items that contain slots (their lengths
are recomputed per call). Per call only the slots, the patient and study attributes of the source
and the contributing-equipment item are encoded, the way highdicom and pydicom would.

The result is byte for byte what the from-scratch path gives for the same ``SRIdentity``; the
tests pin that for several shapes and sources. Anything the template cannot represent exactly
(a non-ASCII model version) goes the from-scratch way.
"""

from __future__ import annotations

import datetime
import functools
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from highdicom import ContributingEquipment
from highdicom.enum import PatientSexValues
from highdicom._standard_utils import get_iod_module_map, get_module_attribute_map, get_sop_class_iod_map
from highdicom.sr.content import _check_valid_source_image_dataset
from highdicom.valuerep import _check_specific_character_set
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import UID
from pydicom.valuerep import DA, DS, DT, TM

from boneage.report import dicom
from boneage.result import COMPLETED, AssessmentResult

_CR = "1.2.840.10008.5.1.4.1.1.1"
_DEFAULT_ENCODING = "iso8859"     # what pydicom's writer assumes without a Specific Character Set

# Sentinels: values no real SR holds, planted in the template so its slots can be found.
_TEMPLATE_IDENTITY = dicom.SRIdentity(
    series_instance_uid="2.25.9000001", sop_instance_uid="2.25.9000002", tracking_uid="2.25.9000003",
    observer_uid="2.25.9000004", created=datetime.datetime(2001, 2, 3, 4, 5, 6, 70809))
_SKELETON_UIDS = {"SOPInstanceUID": "2.25.9000011", "SeriesInstanceUID": "2.25.9000012",
                  "StudyInstanceUID": "2.25.9000013"}
_SENTINEL_BASE = 90001.25       # measurement k gets _SENTINEL_BASE + k: exact in DS and FD


def _sentinel(k: int) -> float:
    return _SENTINEL_BASE + k


_STRING_SLOTS = {
    _TEMPLATE_IDENTITY.series_instance_uid: "series",
    _TEMPLATE_IDENTITY.sop_instance_uid: "sop",
    _TEMPLATE_IDENTITY.tracking_uid: "tracking",
    _TEMPLATE_IDENTITY.observer_uid: "observer",
    _SKELETON_UIDS["SOPInstanceUID"]: "source_sop",
    _SKELETON_UIDS["SeriesInstanceUID"]: "source_series",
    _SKELETON_UIDS["StudyInstanceUID"]: "study",
    str(DA(_TEMPLATE_IDENTITY.created.date())): "date",
    str(TM(_TEMPLATE_IDENTITY.created.time())): "time",
}
_REFERENCED_SOP_CLASS = tag_for_keyword("ReferencedSOPClassUID")
_CONTRIBUTING_EQUIPMENT = tag_for_keyword("ContributingEquipmentSequence")
_CHARSET = tag_for_keyword("SpecificCharacterSet")

# What highdicom's SOPClass.__init__ sets from the first evidence dataset (before it copies the
# patient and study modules over them).
_FROM_EVIDENCE = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                  "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
_FROM_EVIDENCE_TAGS = frozenset(tag_for_keyword(k) for k in _FROM_EVIDENCE)

_ITEM = b"\xfe\xff\x00\xe0"


class _Shape(NamedTuple):
    """Everything that changes which content items an SR holds or their fixed texts."""

    measurements: tuple[str, ...]       # concept code values, in content order
    interpretation: str | None
    laterality: str | None
    model_version: str
    demo: bool


class _Slot(NamedTuple):
    tag: int
    vr: str
    key: Any            # a _STRING_SLOTS value, "source_class", or ("ds" | "fd", k)


class _Seq(NamedTuple):
    header: bytes       # tag + "SQ" + reserved; the 4-byte length follows
    items: list[list]   # each item: a list of parts (bytes, _Slot, _Seq)


@dataclass
class _Template:
    top: dict[int, Any]            # tag -> part, for the attributes that are not per source
    file_meta: FileMetaDataset
    preamble: bytes


def _shape(result: AssessmentResult) -> _Shape:
    return _Shape(
        measurements=tuple(name.value for name, _, _ in dicom.sr_measurements(result)),
        interpretation=result.interpretation if result.interpretation in dicom.CODE_FLAGS else None,
        laterality=result.laterality if result.laterality in ("L", "R") else None,
        model_version=dicom._software_version(result),
        demo=bool(result.demo_model),
    )


def _encode_element(elem: DataElement, encodings: str | list[str]) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_data_element(fp, elem, encodings)
    return fp.getvalue()


def _slot_key(elem: DataElement) -> Any:
    if elem.VR == "SQ":
        return None
    if elem.tag == _REFERENCED_SOP_CLASS and elem.value == _CR:
        return "source_class"
    if elem.VR == "FD" and isinstance(elem.value, float) and elem.value >= _SENTINEL_BASE:
        return ("fd", round(elem.value - _SENTINEL_BASE))
    if elem.VR == "DS" and elem.value is not None and float(elem.value) >= _SENTINEL_BASE:
        return ("ds", round(float(elem.value) - _SENTINEL_BASE))
    if elem.VR in ("UI", "DA", "TM") and elem.value is not None and not isinstance(elem.value, list):
        return _STRING_SLOTS.get(str(elem.value))
    return None


def _compile_element(elem: DataElement) -> Any:
    """Bytes when nothing below ``elem`` varies per call, else a _Slot or _Seq."""
    if elem.VR == "SQ":
        items = [_compile_item(item) for item in elem.value]
        if all(len(item) == 1 and isinstance(item[0], bytes) or not item for item in items):
            return _encode_element(elem, _DEFAULT_ENCODING)
        header = struct.pack("<HH", elem.tag.group, elem.tag.element) + b"SQ\x00\x00"
        return _Seq(header, items)
    key = _slot_key(elem)
    if key is not None:
        return _Slot(elem.tag, elem.VR, key)
    return _encode_element(elem, _DEFAULT_ENCODING)


def _merge(parts: list) -> list:
    merged: list = []
    for part in parts:
        if isinstance(part, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += part
        else:
            merged.append(part)
    return merged


def _compile_item(item: Dataset) -> list:
    if _CHARSET in item:
        raise ValueError("a content item with its own character set")   # never made by our builder
    return _merge([_compile_element(item[tag]) for tag in sorted(item.keys())])


def _skeleton_source() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = _CR
    ds.Modality, ds.Rows = "CR", 1      # what highdicom checks a source image has
    for keyword, uid in _SKELETON_UIDS.items():
        setattr(ds, keyword, uid)
    return ds


def _template_result(shape_of: AssessmentResult) -> AssessmentResult:
    """A result with the same shape as ``shape_of`` and none of its other fields."""
    r = shape_of
    return AssessmentResult(
        source="template", status=COMPLETED, bone_age_months=r.bone_age_months,
        bone_age_interval_months=r.bone_age_interval_months, chronological_age_months=r.chronological_age_months,
        sds=r.sds, predicted_adult_height_cm=r.predicted_adult_height_cm, interpretation=r.interpretation,
        laterality=r.laterality, model_version=r.model_version, demo_model=r.demo_model,
    )


@functools.lru_cache(maxsize=64)
def _module_tags(sop_class_uid: str) -> tuple[int, ...]:
    """Root attributes of the Patient and Study IE modules of ``sop_class_uid``'s IOD, in the order
    highdicom's ``copy_patient_and_study_information`` copies them (KeyError for an unknown class,
    as there)."""
    iod = get_sop_class_iod_map()[sop_class_uid]
    module_attributes = get_module_attribute_map()
    tags: list[int] = []
    for ie in ("Patient", "Study"):
        for module in get_iod_module_map()[iod]:
            if module["ie"] != ie:
                continue
            tags.extend(int(tag_for_keyword(str(a["keyword"]))) for a in module_attributes[module["key"]]
                        if len(a["path"]) == 0)
    return tuple(tags)


def _build_template(shape: _Shape, result: AssessmentResult) -> _Template:
    template_result = _template_result(result)
    assert _shape(template_result) == shape
    values = [_sentinel(k) for k in range(len(shape.measurements))]
    sr = dicom.build_structured_report_dataset(_skeleton_source(), template_result, _TEMPLATE_IDENTITY, values)
    per_source = _FROM_EVIDENCE_TAGS | set(_module_tags(_CR)) | {_CONTRIBUTING_EQUIPMENT, _CHARSET}
    top = {int(tag): _compile_element(sr[tag]) for tag in sr.keys() if tag not in per_source}
    return _Template(top=top, file_meta=sr.file_meta, preamble=sr.preamble)


_templates: dict[_Shape, _Template] = {}
_MAX_TEMPLATES = 64      # a deployment sees a handful of shapes; the bound only guards memory


def _template(result: AssessmentResult) -> _Template:
    shape = _shape(result)
    found = _templates.get(shape)
    if found is None:
        if len(_templates) >= _MAX_TEMPLATES:
            _templates.pop(next(iter(_templates)))
        found = _templates[shape] = _build_template(shape, result)
    return found


def _source_attributes(source: Dataset, created: datetime.datetime) -> Dataset:
    """The top-level attributes highdicom takes from the source, set the way it sets them."""
    _check_valid_source_image_dataset(source)       # as SourceImageForMeasurementGroup does
    ds = Dataset()
    # As SOPClass.__init__ does (it validates too: an invalid sex or date raises there and here).
    ds.PatientID = source.PatientID
    ds.PatientName = source.PatientName
    ds.PatientBirthDate = DA(source.PatientBirthDate)
    sex = source.PatientSex
    if sex is not None and sex != "":
        sex = PatientSexValues(sex).value
    ds.PatientSex = sex
    ds.StudyInstanceUID = str(source.StudyInstanceUID)
    ds.AccessionNumber = source.AccessionNumber
    ds.StudyID = source.StudyID
    ds.StudyDate = DA(source.StudyDate) if source.StudyDate is not None else None
    ds.StudyTime = TM(source.StudyTime) if source.StudyTime is not None else None
    ds.ReferringPhysicianName = getattr(source, "ReferringPhysicianName", None)
    charset = source.get("SpecificCharacterSet")
    if charset is not None:
        ds.SpecificCharacterSet = _check_specific_character_set(charset)
    # copy_patient_and_study_information: the source's own elements win.
    for tag in _module_tags(source.SOPClassUID):
        if tag in source:
            ds.add(source[tag])
    # _add_contributing_equipment: the source's acquisition equipment when it has any, then highdicom.
    equipment = []
    try:
        equipment.append(ContributingEquipment.for_image_acquisition(source))
    except Exception:  # noqa: BLE001 - highdicom skips the item on any failure; so do we
        pass
    library = ContributingEquipment.for_highdicom()
    library.ContributionDateTime = DT(created)
    equipment.append(library)
    ds.ContributingEquipmentSequence = equipment
    return ds


def _render(part: Any, values: dict, out: list[bytes]) -> None:
    if isinstance(part, bytes):
        out.append(part)
    elif isinstance(part, _Slot):
        out.append(_encode_element(DataElement(part.tag, part.vr, values[part.key]), _DEFAULT_ENCODING))
    else:
        body: list[bytes] = []
        for item in part.items:
            inner: list[bytes] = []
            for p in item:
                _render(p, values, inner)
            encoded = b"".join(inner)
            body += (_ITEM, struct.pack("<I", len(encoded)), encoded)
        encoded = b"".join(body)
        out += (part.header, struct.pack("<I", len(encoded)), encoded)


def render_structured_report(source: Dataset, result: AssessmentResult, identity: dicom.SRIdentity) -> bytes:
    """The encoded SR for ``source`` and ``result``; see the module docstring."""
    source = dicom.prepare_source(source)
    if not dicom._software_version(result).isascii():
        return dicom.build_structured_report_from_scratch(source, result, identity)
    template = _template(result)
    created = identity.created
    values: dict[Any, Any] = {
        "series": identity.series_instance_uid, "sop": identity.sop_instance_uid,
        "tracking": identity.tracking_uid, "observer": identity.observer_uid,
        "source_sop": source.SOPInstanceUID, "source_series": source.SeriesInstanceUID,
        "study": source.StudyInstanceUID, "source_class": source.SOPClassUID,
        "date": DA(created.date()), "time": TM(created.time()),
    }
    for k, (_, value, _) in enumerate(dicom.sr_measurements(result)):
        values[("ds", k)] = DS(value, auto_format=True)
        values[("fd", k)] = value

    per_source = _source_attributes(source, created)
    charset = per_source.get("SpecificCharacterSet")
    encodings = _DEFAULT_ENCODING if charset is None else charset
    parts = dict(template.top)
    for tag in per_source.keys():
        parts[int(tag)] = _encode_element(per_source[tag], encodings)

    out: list[bytes] = []
    file_meta = FileMetaDataset(template.file_meta)
    file_meta.MediaStorageSOPInstanceUID = UID(identity.sop_instance_uid)
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, file_meta, enforce_standard=True)
    out += (template.preamble, b"DICM", meta.getvalue())
    for tag in sorted(parts):
        _render(parts[tag], values, out)
    return b"".join(out)


def clear_templates() -> None:
    """Forget every template (tests use it to start cold)."""
    _templates.clear()


__all__ = ["clear_templates", "render_structured_report"]
