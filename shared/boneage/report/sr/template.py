"""The Structured Report from a template per result shape: highdicom's output in a few milliseconds.

highdicom builds a correct SR but spends ~100 ms of Python on it (deep copies, re-parsing its own
content tree, evidence search) and pydicom's writer another ~15 ms, against a 250 ms budget for
the whole assessment. Yet two SRs of the same *shape* (which optional items are present: interval,
CA, BA - CA, SDS, adult height, the interpretation flag, laterality, model version, demo flag)
differ only in a few leaf values. So each shape is built once by highdicom
(``builder.build_dataset``) from a skeleton source holding no patient data, with
sentinel UIDs, times and measurement values; the sentinels mark the slots. The template is kept
*encoded*: static runs of bytes, slots, and the sequences/items that contain slots (their lengths
are recomputed per call). Per call only the slots, the patient and study attributes of the source
and the contributing-equipment item are encoded, the way highdicom and pydicom would.

The result is byte for byte what the from-scratch path gives for the same ``SRIdentity``; the
tests pin that for several shapes and sources. Anything the template cannot represent exactly
(a non-ASCII model version: ``can_render`` says no) goes the from-scratch way. What highdicom takes
from the source is redone by ``boneage.compat.highdicom``, the one place its internals are used.
"""

from __future__ import annotations

import datetime
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import UID, ComputedRadiographyImageStorage
from pydicom.valuerep import DA, DS, TM

from boneage.compat.highdicom import source_attribute_tags, source_attributes
from boneage.report.derived import prepare_source, software_version
from boneage.report.sr.builder import build_dataset
from boneage.report.sr.content import CODE_FLAGS, SRIdentity, sr_measurements
from boneage.result import COMPLETED, AssessmentResult

_CR = ComputedRadiographyImageStorage     # the skeleton source's class
_DEFAULT_ENCODING = "iso8859"     # what pydicom's writer assumes without a Specific Character Set

# Sentinels: values no real SR holds, planted in the template so its slots can be found.
_TEMPLATE_IDENTITY = SRIdentity(
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
_CHARSET = tag_for_keyword("SpecificCharacterSet")

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
        measurements=tuple(name.value for name, _, _ in sr_measurements(result)),
        interpretation=result.interpretation if result.interpretation in CODE_FLAGS else None,
        laterality=result.laterality if result.laterality in ("L", "R") else None,
        model_version=software_version(result),
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


def _build_template(shape: _Shape, result: AssessmentResult) -> _Template:
    template_result = _template_result(result)
    assert _shape(template_result) == shape
    values = [_sentinel(k) for k in range(len(shape.measurements))]
    sr = build_dataset(_skeleton_source(), template_result, _TEMPLATE_IDENTITY, values)
    per_source = source_attribute_tags(_CR)
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


def can_render(result: AssessmentResult) -> bool:
    """Whether a template represents ``result``'s SR exactly (else build it from scratch)."""
    return software_version(result).isascii()


def render(source: Dataset, result: AssessmentResult, identity: SRIdentity) -> bytes:
    """The encoded SR for ``source`` and ``result`` (``can_render(result)`` must hold); see the module docstring."""
    source = prepare_source(source)
    template = _template(result)
    created = identity.created
    values: dict[Any, Any] = {
        "series": identity.series_instance_uid, "sop": identity.sop_instance_uid,
        "tracking": identity.tracking_uid, "observer": identity.observer_uid,
        "source_sop": source.SOPInstanceUID, "source_series": source.SeriesInstanceUID,
        "study": source.StudyInstanceUID, "source_class": source.SOPClassUID,
        "date": DA(created.date()), "time": TM(created.time()),
    }
    for k, (_, value, _) in enumerate(sr_measurements(result)):
        values[("ds", k)] = DS(value, auto_format=True)
        values[("fd", k)] = value

    per_source = source_attributes(source, created)
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


__all__ = ["can_render", "clear_templates", "render"]
