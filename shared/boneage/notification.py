"""What clinicians and machines are told when an assessment finishes (pure: no boto3, no I/O).

``compose(result, report_url)`` returns a ``Notification``: an e-mail-friendly subject and body, a
JSON body for machine subscribers, SNS message attributes and the SNS ``MessageStructure="json"``
message that carries the right body per protocol. ``build_message`` adds the routing attributes
(``hospital_id``, ``status``, ``interpretation``, ``upload_id``) and gives the ``OutgoingMessage`` the
upload use case hands to its ``Publisher``. The study is named by its accession number or
the hospital's own ``study_reference``; patient names, patient IDs and birth dates never appear
(``AssessmentResult`` does not carry them, and nothing here reads a DICOM dataset).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boneage.clinical.text import (
    DEMO_DISCLAIMER,
    adult_height_text,
    flag_text,
    interval_text,
    sds_text,
    sex_text,
    signed,
    years_months,
)
from boneage.result import COMPLETED, AssessmentResult

SCHEMA = "boneage.assessment.v1"
SUBJECT_MAX = 100          # SNS e-mail subject limit: ASCII, no line breaks, <= 100 characters
MACHINE_PROTOCOLS = ("sqs", "lambda", "http", "https", "email-json")

FLAG_WORDS = {"delayed": "DELAYED", "advanced": "ADVANCED", "within_normal_limits": "within normal limits"}


@dataclass(frozen=True)
class Notification:
    subject: str
    text: str                                   # e-mail body
    json_body: dict[str, Any]                   # for machine subscribers
    attributes: dict[str, dict[str, str]]       # SNS MessageAttributes (String)
    sns_message: str                            # publish with MessageStructure="json"


def _ascii_line(text: str) -> str:
    """SNS subjects must be printable ASCII on one line."""
    text = text.encode("ascii", "replace").decode("ascii")
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def study_label(result: AssessmentResult) -> str:
    return result.accession_number or result.study_reference or "no study reference"


def _subject(result: AssessmentResult) -> str:
    ref = study_label(result)
    demo = "[DEMO] " if result.demo_model else ""
    if result.status == COMPLETED and result.bone_age_months is not None:
        flag = FLAG_WORDS.get(result.interpretation or "", "no SDS")
        sds = f", SDS {signed(result.sds)}" if result.sds is not None else ""
        y, m = divmod(int(round(result.bone_age_months)), 12)
        head = f"{demo}Bone age {y} y {m} m{sds}, {flag}"
    else:
        head = f"{demo}Bone age assessment {result.status}: {result.reason or 'unknown reason'}"
    subject = _ascii_line(f"{head} - {ref}")
    if len(subject) > SUBJECT_MAX:
        subject = subject[: SUBJECT_MAX - 3].rstrip() + "..."
    return subject


def _text(result: AssessmentResult, report_url: str | None, expires_in_s: int | None) -> str:
    lines = [f"Bone age assessment: {result.status}", ""]
    if result.demo_model:
        lines += [f"*** {DEMO_DISCLAIMER}: the weights were not trained on real radiographs. ***", ""]
    lines.append(f"Study reference: {study_label(result)}")
    if result.status == COMPLETED:
        ba_minus_ca = (
            result.bone_age_months - result.chronological_age_months
            if result.bone_age_months is not None and result.chronological_age_months is not None
            else None
        )
        lines += [
            f"Bone age: {years_months(result.bone_age_months)}",
            f"90 % interval: {interval_text(result.bone_age_interval_months)}",
            f"Chronological age: {years_months(result.chronological_age_months)}",
            f"BA - CA: {signed(ba_minus_ca, 1, ' months')}",
            f"Sex: {sex_text(result.sex, result.sex_source, result.predicted_sex)}",
            f"Bone age SDS: {sds_text(result.sds, result.sds_interval, result.sds_reason)}",
            f"Interpretation: {flag_text(result.interpretation, result.interpretation_reason, result.near_skeletal_maturity)}",
            "Predicted adult height: "
            + adult_height_text(result.predicted_adult_height_cm, result.adult_height_table, result.adult_height_reason),
        ]
    else:
        lines += [f"Reason: {result.reason or 'unknown'}", f"Details: {result.message or '-'}"]
    for warning in result.warnings:
        lines.append(f"Note: {warning}")
    lines.append("")
    if report_url:
        expiry = ""
        if expires_in_s:
            expiry = f" (link valid for {expires_in_s // 60} minutes)" if expires_in_s >= 120 else \
                f" (link valid for {expires_in_s} seconds)"
        lines.append(f"Report: {report_url}{expiry}")
    elif result.status == COMPLETED:
        lines.append("Report: not available by link; see PACS (new series in the same study) if DICOM was sent.")
    lines += [
        f"Model version: {result.model_version or 'unknown'}",
        "Reference: Greulich & Pyle 1959 (Brush Foundation means and SDs); adult height: Bayley-Pinneau.",
        "",
        "This message intentionally contains no patient name, patient ID or birth date.",
    ]
    return "\n".join(lines) + "\n"


def _json_body(result: AssessmentResult, report_url: str | None, expires_in_s: int | None) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "status": result.status,
        "reason": result.reason,
        "message": result.message,
        "study_reference": study_label(result) if (result.accession_number or result.study_reference) else None,
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
        "model_version": result.model_version,
        "demo_model": result.demo_model,
        "disclaimer": DEMO_DISCLAIMER if result.demo_model else None,
        "warnings": list(result.warnings),
    }


def compose(
    result: AssessmentResult,
    report_url: str | None,
    *,
    hospital_id: str | None = None,
    report_url_expires_in_s: int | None = None,
) -> Notification:
    """The notification for one result; ``report_url`` is a presigned link made by the caller."""
    text = _text(result, report_url, report_url_expires_in_s)
    body = _json_body(result, report_url, report_url_expires_in_s)
    body_json = json.dumps(body, sort_keys=True, separators=(",", ":"))
    structured = {"default": text, "email": text}
    structured.update({protocol: body_json for protocol in MACHINE_PROTOCOLS})
    attributes = {
        "hospital_id": hospital_id or "unknown",
        "status": result.status,
        "interpretation": result.interpretation or "none",
    }
    return Notification(
        subject=_subject(result),
        text=text,
        json_body=body,
        attributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        sns_message=json.dumps(structured),
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


def build_message(result: AssessmentResult, *, hospital_id: str, upload_id: str,
                  report_url: str | None, report_url_expires_in_s: int | None = None) -> OutgoingMessage:
    """The message for one result: compose()'s wording plus the routing attributes we own."""
    note = compose(result, report_url, hospital_id=hospital_id, report_url_expires_in_s=report_url_expires_in_s)
    attributes = _string_attributes(note.attributes)
    # Routing attributes are ours; they override whatever the composer suggested.
    attributes.update(
        hospital_id=hospital_id,
        status=result.status,
        interpretation=result.interpretation or "none",
        upload_id=upload_id,
    )
    return OutgoingMessage(subject=note.subject, message=note.sns_message, attributes=attributes, structured=True)
