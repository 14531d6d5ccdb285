"""What clinicians and machines are told when an assessment finishes (pure: no boto3, no I/O).

``compose(result, report_url, upload_id=...)`` returns a ``Notification``: an e-mail subject and body,
a JSON body for machine subscribers, SNS message attributes and the SNS ``MessageStructure="json"``
message that carries the right body per protocol.

**E-mail says only that a result is ready.** SNS encrypts the topic at rest, but an e-mail leaves AWS
in the clear for every mail server on its way and stays in mailboxes. So the e-mail (and every
protocol without its own key in the structured message: ``default``, ``email``, ``email-json``,
``http``) carries the status, the reason code of a rejection, the model version, the demo mark and
an opaque reference: the ``upload_id`` (``sha256(bucket/key/version)[:32]``), which the hospital
resolves through its machine feed, the results table or its own upload log. No accession number,
no ``study-ref`` (the hospital chooses it and it may carry a name), no age, sex or findings, and no
link: a presigned link to the report is a bearer token to a picture of the radiograph.

**The full result goes to machine subscribers** (``sqs``, ``lambda``, ``https``: encrypted transports;
the topic policy refuses the others) as JSON ``boneage.assessment.v1``, with the presigned report link, the
upload's ``object_ref`` (``sha256(bucket/key)[:32]``: the same for every version of one key, and no
key, which a hospital may have named after a patient) and the results bucket's ``report_keys`` (file
name -> key): the DICOM gateway finds the instance it put by the first and fetches the SC and SR by
the second.

**Every message is publishable.** Strings are cleaned of control and format characters
(``boneage.safetext``) and the JSON body is cut down, field by field and then to its bounded core,
until the SNS message fits ``budget_bytes`` (SNS refuses a publish over 256 KB, message and
attributes together, and a refused notification would be retried forever).

``build_message`` adds the routing attributes (``hospital_id``, ``status``, ``interpretation``,
``upload_id``) and gives the ``OutgoingMessage`` the upload use case hands to its ``Publisher``,
sized under SNS's publish limit whatever the result's fields hold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boneage.clinical.text import DEMO_DISCLAIMER
from boneage.result import COMPLETED, FAILED, SCHEMA, AssessmentResult
from boneage.safetext import clean, clip

SUBJECT_MAX = 100          # SNS e-mail subject limit: ASCII, no line breaks, <= 100 characters
MACHINE_PROTOCOLS = ("sqs", "lambda", "https")      # encrypted transports; everything else gets the e-mail text
SNS_MAX_PUBLISH_BYTES = 256 * 1024                  # message, subject and attributes together
DEFAULT_BUDGET_BYTES = 240 * 1024                   # leaves room for the attributes the adapter adds
FIELD_MAX_CHARS = 1024                              # a string field's length once the body must shrink
LIST_MAX_ITEMS = 20
ATTRIBUTE_MAX_CHARS = 256                           # our attribute values are short ids and codes; bound them anyway
SAFETY_MARGIN_BYTES = 4096                          # for SNS's own accounting of the structure

_FLOAT_FIELDS = ("bone_age_months", "chronological_age_months", "sds", "predicted_adult_height_cm")
_FLOAT_LIST_FIELDS = ("bone_age_interval_months", "sds_interval")
_CORE_FIELDS = ("schema", "upload_id", "status", "reason", "bone_age_months", "bone_age_interval_months",
                "chronological_age_months", "sex", "sds", "sds_interval", "interpretation",
                "predicted_adult_height_cm", "model_version", "demo_model", "disclaimer", "study_instance_uid",
                "object_ref", "report_keys")


@dataclass(frozen=True)
class Notification:
    subject: str
    text: str                                   # e-mail body
    json_body: dict[str, Any]                   # for machine subscribers
    attributes: dict[str, dict[str, str]]       # SNS MessageAttributes (String)
    sns_message: str                            # publish with MessageStructure="json"


def _ascii_line(text: str) -> str:
    """SNS subjects must be printable ASCII on one line."""
    return clean(text).encode("ascii", "replace").decode("ascii")


def _ref(upload_id: str | None) -> str:
    return clip(clean(upload_id or ""), 64) or "none"


def _status_line(result: AssessmentResult) -> str:
    if result.status == COMPLETED:
        return "A bone age result is ready."
    reason = clean(result.reason or "unknown")
    if result.status == FAILED:
        return f"A bone age assessment could not be completed (reason code: {reason})."
    return f"A bone age upload was rejected (reason code: {reason})."


def _subject(result: AssessmentResult, upload_id: str | None) -> str:
    demo = "[DEMO] " if result.demo_model else ""
    head = "Bone age result ready" if result.status == COMPLETED else f"Bone age upload {clean(result.status)}"
    return clip(_ascii_line(f"{demo}{head} - ref {_ref(upload_id)}"), SUBJECT_MAX)


def _text(result: AssessmentResult, upload_id: str | None) -> str:
    lines = [_status_line(result), ""]
    if result.demo_model:
        lines += [f"*** {DEMO_DISCLAIMER}: the weights were not trained on real radiographs. ***", ""]
    lines += [
        f"Reference: {_ref(upload_id)}",
        "Open the result under this reference in your results feed (the boneage.assessment.v1 messages",
        "your systems receive), or in PACS, where a DICOM upload's report is a new series of the study.",
        f"Model version: {clip(clean(result.model_version or 'unknown'), 64)}",
        "",
        "This e-mail deliberately carries no patient or study identifiers, ages, sex or findings,",
        "and no link: e-mail is not an encrypted channel.",
    ]
    return "\n".join(lines) + "\n"


def _number(value: Any) -> float | None:
    # DynamoDB gives whole numbers back without a fraction (178.0 -> 178): machines get one type.
    return None if value is None else float(value)


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    if isinstance(value, dict):
        return {k: _cleaned(v) for k, v in value.items()}
    return value


def _json_body(result: AssessmentResult, upload_id: str | None, report_url: str | None,
               expires_in_s: int | None, object_ref: str | None,
               report_keys: Mapping[str, str] | None) -> dict[str, Any]:
    body = {
        "schema": SCHEMA,
        "upload_id": upload_id,
        "status": result.status,
        "reason": result.reason,
        "message": result.message,
        "study_reference": result.study_reference or result.accession_number,
        "accession_number": result.accession_number,
        "study_instance_uid": result.study_instance_uid,
        "bone_age_months": result.bone_age_months,
        "bone_age_interval_months": result.bone_age_interval_months,
        "chronological_age_months": result.chronological_age_months,
        "sex": result.sex,
        "sex_source": result.sex_source,
        "sds": result.sds,
        "sds_interval": result.sds_interval,
        "sds_reason": result.sds_reason,
        "interpretation": result.interpretation,
        "interpretation_reason": result.interpretation_reason,
        "near_skeletal_maturity": result.near_skeletal_maturity,
        "predicted_adult_height_cm": result.predicted_adult_height_cm,
        "adult_height_table": result.adult_height_table,
        "adult_height_reason": result.adult_height_reason,
        "report_url": report_url,
        "report_url_expires_in_s": expires_in_s if report_url else None,
        "report_files": list(result.report_files),
        # Which upload and where its reports are: the DICOM gateway (``boneage.gateway``) finds the
        # instance it put by ``object_ref`` (a hash of the key, never the key) and fetches the SC and SR
        # by ``report_keys``, keys we chose: ``reports/<hospital>/<upload_id[:16]>/<file>``.
        "object_ref": object_ref,
        "report_keys": dict(sorted((report_keys or {}).items())),
        "model_version": result.model_version,
        "demo_model": result.demo_model,
        "disclaimer": DEMO_DISCLAIMER if result.demo_model else None,
        "warnings": list(result.warnings),
    }
    for key in _FLOAT_FIELDS:
        body[key] = _number(body[key])
    for key in _FLOAT_LIST_FIELDS:
        body[key] = None if body[key] is None else [_number(v) for v in body[key]]
    body = _cleaned(body)
    body["study_reference"] = body["study_reference"] or None
    return body


def _structured(text: str, body: dict[str, Any]) -> str:
    body_json = json.dumps(body, sort_keys=True, separators=(",", ":"))
    structured = {"default": text, "email": text}
    structured.update({protocol: body_json for protocol in MACHINE_PROTOCOLS})
    return json.dumps(structured)


def _shrunk(body: dict[str, Any]) -> dict[str, Any]:
    """Every string clipped and every list shortened: what a body of ordinary fields can always fit."""
    def cut(value: Any) -> Any:
        if isinstance(value, str):
            return clip(value, FIELD_MAX_CHARS)
        if isinstance(value, list):
            return [cut(v) for v in value[:LIST_MAX_ITEMS]]
        return value
    return {**{k: cut(v) for k, v in body.items()}, "truncated": True}


def _core(body: dict[str, Any]) -> dict[str, Any]:
    """The last resort: numbers, codes and ids, each cut to the size it has when well formed."""
    def cut(value: Any) -> Any:
        if isinstance(value, str):
            return clip(value, 64)
        if isinstance(value, list):
            return [cut(v) for v in value[:2]]
        return value
    return {**{k: cut(body.get(k)) for k in _CORE_FIELDS}, "truncated": True}


def compose(
    result: AssessmentResult,
    report_url: str | None,
    *,
    upload_id: str | None = None,
    hospital_id: str | None = None,
    report_url_expires_in_s: int | None = None,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    object_ref: str | None = None,
    report_keys: Mapping[str, str] | None = None,
) -> Notification:
    """The notification for one result; ``report_url`` (a presigned link made by the caller) goes to
    machine subscribers only. ``budget_bytes`` bounds the encoded ``sns_message``."""
    text = _text(result, upload_id)
    body = _json_body(result, upload_id, report_url, report_url_expires_in_s, object_ref, report_keys)
    message = _structured(text, body)
    for shrink in (_shrunk, _core):
        if len(message.encode()) <= budget_bytes:
            break
        body = shrink(body)
        message = _structured(text, body)
    attributes = {
        "hospital_id": clean(hospital_id or "") or "unknown",
        "status": result.status,
        "interpretation": result.interpretation or "none",
    }
    return Notification(
        subject=_subject(result, upload_id),
        text=text,
        json_body=body,
        attributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        sns_message=message,
    )


@dataclass(frozen=True)
class OutgoingMessage:
    subject: str
    message: str                    # the SNS message (MessageStructure="json" when ``structured``)
    attributes: dict[str, str]
    structured: bool = False


def _string_attributes(raw: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (raw or {}).items():
        if isinstance(value, Mapping):          # already in SNS shape
            value = value.get("StringValue")
        if value is not None and str(value) != "":
            out[str(name)] = str(value)
    return out


def publish_size(message: OutgoingMessage) -> int:
    """What SNS counts against its 256 KB publish limit: the message, the subject and the attributes."""
    size = len(message.message.encode()) + len(message.subject.encode())
    for name, value in message.attributes.items():
        size += len(name.encode()) + len(value.encode()) + len("String")
    return size


def build_message(result: AssessmentResult, *, hospital_id: str, upload_id: str,
                  report_url: str | None, report_url_expires_in_s: int | None = None,
                  object_ref: str | None = None, report_keys: Mapping[str, str] | None = None) -> OutgoingMessage:
    """The SNS message for one result: compose()'s wording plus the routing attributes we own, sized
    so that SNS accepts it whatever the result's fields hold (a refused publish would never succeed)."""
    # Routing attributes are ours; they override whatever the composer suggested.
    ours = {"hospital_id": clean(hospital_id), "status": clean(result.status),
            "interpretation": clean(result.interpretation or "none"), "upload_id": clean(upload_id)}
    ours = {k: clip(v, ATTRIBUTE_MAX_CHARS) for k, v in ours.items()}
    overhead = SUBJECT_MAX + sum(len(k.encode()) + len(v.encode()) + len("String") for k, v in ours.items())
    note = compose(result, report_url, upload_id=upload_id, hospital_id=hospital_id,
                   report_url_expires_in_s=report_url_expires_in_s,
                   budget_bytes=SNS_MAX_PUBLISH_BYTES - overhead - SAFETY_MARGIN_BYTES,
                   object_ref=object_ref, report_keys=report_keys)
    attributes = _string_attributes(note.attributes)
    attributes.update(ours)
    return OutgoingMessage(subject=note.subject, message=note.sns_message, attributes=attributes, structured=True)
