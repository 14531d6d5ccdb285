"""The notification: an e-mail that says only that a result is ready, the full result as JSON for
machine subscribers on encrypted transports, SNS structure and attributes, and a size that SNS
always accepts."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from boneage.notification import SUBJECT_MAX, build_message, compose
from boneage.result import COMPLETED, REJECTED, AssessmentResult

from .cases import ACCESSION, make_case

URL = "https://results.example/report.png?X-Amz-Signature=abc"
UPLOAD_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def completed(rng) -> AssessmentResult:
    _, _, result = make_case(rng)
    result.report_files = ["report.png", "report_sc.dcm", "report_sr.dcm"]
    return result


def _email_parts(note) -> list[str]:
    structured = json.loads(note.sns_message)
    return [note.subject, note.text, structured["default"], structured["email"]]


def test_email_subject_says_a_result_is_ready_with_the_opaque_reference_only(completed):
    note = compose(completed, URL, upload_id=UPLOAD_ID)
    assert note.subject == f"[DEMO] Bone age result ready - ref {UPLOAD_ID}"
    assert len(note.subject) <= SUBJECT_MAX and note.subject.isascii() and "\n" not in note.subject


def test_email_carries_no_study_identifier_age_sex_findings_or_link(completed):
    completed.study_reference = "SMITH-JOHN-2015"        # the hospital chose it; it may carry a name
    note = compose(completed, URL, upload_id=UPLOAD_ID, report_url_expires_in_s=900)
    for part in _email_parts(note):
        for forbidden in (ACCESSION, "SMITH", completed.study_instance_uid, "http", "X-Amz", "report.png",
                          "131", "10 y", "SDS", "female", "within normal", "155.2", "Chronological"):
            assert forbidden not in part, f"{forbidden!r} in the e-mail"
    assert f"Reference: {UPLOAD_ID}" in note.text and "A bone age result is ready." in note.text
    assert "NOT FOR CLINICAL USE - demonstration model" in note.text
    assert "Model version: demo-0.1+abc123" in note.text


def test_machine_subscribers_on_encrypted_transports_get_the_full_result_and_the_link(completed):
    note = compose(completed, URL, upload_id=UPLOAD_ID)
    structured = json.loads(note.sns_message)
    assert structured["default"] == structured["email"] == note.text
    for protocol in ("sqs", "lambda", "https"):
        assert json.loads(structured[protocol]) == note.json_body
    # No key of their own: plain http and email-json subscribers fall back to the e-mail text.
    assert "http" not in structured and "email-json" not in structured
    body = note.json_body
    assert body["upload_id"] == UPLOAD_ID and body["bone_age_months"] == 131.0 and body["sds"] == completed.sds
    assert body["interpretation"] == "within_normal_limits" and body["report_url"] == URL
    assert body["model_version"] == "demo-0.1+abc123" and body["demo_model"] is True
    assert body["study_reference"] == body["accession_number"] == ACCESSION
    assert "truncated" not in body


def test_message_attributes_are_sns_strings_for_filter_policies(completed):
    attrs = compose(completed, None, hospital_id="hospital-a").attributes
    assert attrs == {
        "hospital_id": {"DataType": "String", "StringValue": "hospital-a"},
        "status": {"DataType": "String", "StringValue": "completed"},
        "interpretation": {"DataType": "String", "StringValue": "within_normal_limits"},
    }


def test_rejection_email_gives_the_reason_code_but_not_the_message():
    result = AssessmentResult(source="x.png", status=REJECTED, reason="invalid_metadata",
                              message="upload metadata 'birth-date': not a valid date in YYYYMMDD or YYYY-MM-DD form",
                              study_reference="ref-7", model_version="demo-0.1")
    note = compose(result, None, upload_id="u-1")
    assert note.subject == "[DEMO] Bone age upload rejected - ref u-1"
    assert "reason code: invalid_metadata" in note.text and "birth-date" not in note.text
    assert "ref-7" not in note.text and "ref-7" not in note.subject
    assert note.attributes["interpretation"]["StringValue"] == "none"
    body = json.loads(json.loads(note.sns_message)["sqs"])
    assert body["reason"] == "invalid_metadata" and "birth-date" in body["message"]


def test_unknown_sex_reaches_machines_as_null_with_the_reason(rng):
    _, _, result = make_case(rng, sex=None)
    result.predicted_sex = "M"
    note = compose(result, None)
    assert note.json_body["sex"] is None and note.json_body["sds"] is None
    assert note.json_body["sds_reason"] and note.attributes["interpretation"]["StringValue"] == "none"


def test_non_ascii_or_long_references_keep_the_subject_valid(completed):
    subject = compose(completed, None, upload_id="Réf-\u202e" + "9" * 150).subject
    assert len(subject) <= SUBJECT_MAX and subject.isascii() and subject.endswith("...")
    assert "\u202e" not in subject


def test_real_model_has_no_demo_marks(completed):
    completed.demo_model = False
    note = compose(completed, URL)
    assert "[DEMO]" not in note.subject and "NOT FOR CLINICAL USE" not in note.text
    assert note.json_body["disclaimer"] is None


def test_the_published_message_is_the_structured_one_with_our_routing_attributes(completed):
    """What the SNS adapter publishes: compose()'s per-protocol message, our attributes on top."""
    message = build_message(completed, hospital_id="hospital-a", upload_id="u-1", report_url=URL)
    assert message.structured is True
    assert json.loads(message.message) == json.loads(compose(completed, URL, upload_id="u-1").sns_message)
    assert message.subject == compose(completed, URL, upload_id="u-1").subject
    assert message.attributes == {"hospital_id": "hospital-a", "status": "completed",
                                  "interpretation": "within_normal_limits", "upload_id": "u-1"}


def test_whole_numbers_from_dynamodb_give_the_same_notification(completed):
    """DynamoDB returns 178.0 as 178: nothing downstream may depend on the type."""
    as_ints = dataclasses.replace(
        completed, bone_age_months=131, bone_age_interval_months=[123, 139],
        chronological_age_months=123, predicted_adult_height_cm=155,
        sds=-1 if completed.sds is not None else None,
    )
    as_floats = dataclasses.replace(
        as_ints, bone_age_months=131.0, bone_age_interval_months=[123.0, 139.0],
        chronological_age_months=123.0, predicted_adult_height_cm=155.0,
        sds=-1.0 if completed.sds is not None else None,
    )
    a, b = compose(as_ints, URL, upload_id=UPLOAD_ID), compose(as_floats, URL, upload_id=UPLOAD_ID)
    assert a.sns_message == b.sns_message and a.subject == b.subject
    assert isinstance(a.json_body["bone_age_months"], float)
    assert all(isinstance(v, float) for v in a.json_body["bone_age_interval_months"])


def test_control_and_bidi_characters_never_reach_a_subscriber(completed):
    """An old record, written before header values were cleaned, must not inject lines either."""
    completed.accession_number = "ACC1\r\nReport: https://evil.example\u202e"
    completed.warnings = ["note\x00with\x1bcontrols"]
    note = compose(completed, URL, upload_id=UPLOAD_ID)
    body = json.loads(json.loads(note.sns_message)["sqs"])
    assert body["accession_number"] == "ACC1 Report: https://evil.example"
    assert body["warnings"] == ["notewithcontrols"]
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", note.text + note.subject)


def _largest_legal(result: AssessmentResult) -> AssessmentResult:
    """Every text field at the longest value ingest lets through (DICOM VR limits, 64-character
    metadata), in 3-byte UTF-8 characters, and more warnings than any real upload collects."""
    wide = "\u4e2d"
    return dataclasses.replace(
        result, accession_number=wide * 16, study_reference=wide * 64, study_instance_uid="1." + "2" * 62,
        series_instance_uid="1." + "3" * 62, sop_instance_uid="1." + "4" * 62, modality=wide * 16,
        message=wide * 1024, warnings=[f"{'AccessionNumber' * 4} is longer than its DICOM limit" * 4] * 50,
        model_version=wide * 64, report_files=["report.png", "report_sc.dcm", "report_sr.dcm"],
    )


def test_largest_legal_values_publish_whole_under_the_sns_limit(completed):
    from boneage.notification import build_message, publish_size
    from boneage.notification import SNS_MAX_PUBLISH_BYTES

    result = _largest_legal(completed)
    message = build_message(result, hospital_id="h" * 63, upload_id=UPLOAD_ID, report_url=URL + "x" * 2000)
    assert publish_size(message) <= SNS_MAX_PUBLISH_BYTES
    body = json.loads(json.loads(message.message)["sqs"])
    assert "truncated" not in body and body["accession_number"] == result.accession_number


@pytest.mark.parametrize("size", [30_000, 300_000, 3_000_000])
def test_no_field_size_makes_a_notification_unpublishable(completed, size):
    """Whatever a record holds (an old record, a bug upstream), the message fits: fields are cut,
    then the body falls back to its bounded core, and says so with ``truncated``."""
    from boneage.notification import build_message, publish_size
    from boneage.notification import SNS_MAX_PUBLISH_BYTES

    big = "A\r\n" * (size // 3)
    result = dataclasses.replace(completed, accession_number=big, study_reference=big, message=big,
                                 study_instance_uid=big, adult_height_table=big, warnings=[big] * 3 + ["w"] * 5000,
                                 model_version=big, reason=big)
    message = build_message(result, hospital_id="hospital-a", upload_id=UPLOAD_ID, report_url=URL)
    assert publish_size(message) <= SNS_MAX_PUBLISH_BYTES
    body = json.loads(json.loads(message.message)["sqs"])
    assert body["truncated"] is True and body["status"] == COMPLETED and body["upload_id"] == UPLOAD_ID
    assert body["bone_age_months"] == 131.0 and len(message.subject) <= SUBJECT_MAX


def test_near_mature_hand_is_flagged_for_machines_and_kept_out_of_the_email(completed, rng):
    completed.near_skeletal_maturity = True
    note = compose(completed, URL, upload_id=UPLOAD_ID)
    assert note.json_body["near_skeletal_maturity"] is True
    assert "maturity" not in note.text.lower() and "maturity" not in note.subject.lower()   # a finding
    assert compose(make_case(rng)[2], URL, upload_id=UPLOAD_ID).json_body["near_skeletal_maturity"] is False


def test_machine_body_names_the_upload_by_a_hash_of_its_key_and_the_report_keys_and_the_email_does_not(completed):
    """The DICOM gateway files a result under the instance it put (``object_ref``: a hash of the key, never
    the key, which a hospital may name after a patient) and fetches the SC and SR by ``report_keys``;
    both stay out of the e-mail, and survive the body's last-resort core."""
    keys = {"report.png": "reports/hospital-a/0123456789abcdef/report.png",
            "report_sc.dcm": "reports/hospital-a/0123456789abcdef/report_sc.dcm",
            "report_sr.dcm": "reports/hospital-a/0123456789abcdef/report_sr.dcm"}
    ref = "ab" * 16
    message = build_message(completed, hospital_id="hospital-a", upload_id=UPLOAD_ID, report_url=URL,
                            object_ref=ref, report_keys=keys)
    structured = json.loads(message.message)
    body = json.loads(structured["sqs"])
    assert body["object_ref"] == ref and body["report_keys"] == keys
    assert ref not in structured["email"] and "reports/" not in structured["email"]
    huge = dataclasses.replace(completed, message="A" * 3_000_000, warnings=["w" * 300_000] * 3)
    core = json.loads(json.loads(build_message(huge, hospital_id="hospital-a", upload_id=UPLOAD_ID, report_url=URL,
                                               object_ref=ref, report_keys=keys).message)["sqs"])
    assert core["truncated"] is True and core["object_ref"] == ref and core["report_keys"] == keys
