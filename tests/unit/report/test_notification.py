"""The clinician notification: e-mail subject/body, JSON body, SNS structure and attributes."""

from __future__ import annotations

import json

import pytest

from boneage.notification import SUBJECT_MAX, build_message, compose
from boneage.result import REJECTED, AssessmentResult

from .cases import make_case

URL = "https://results.example/report.png?X-Amz-Signature=abc"


@pytest.fixture
def completed(rng) -> AssessmentResult:
    _, _, result = make_case(rng)
    result.report_files = ["report.png", "report_sc.dcm", "report_sr.dcm"]
    return result


def test_subject_is_short_ascii_and_says_what_a_clinician_needs(completed):
    note = compose(completed, URL)
    assert note.subject == f"[DEMO] Bone age 10 y 11 m, SDS {completed.sds:+.2f}, within normal limits - ACC20241203X"
    assert len(note.subject) <= SUBJECT_MAX and note.subject.isascii() and "\n" not in note.subject


def test_email_body_lists_the_findings_link_model_and_disclaimer(completed):
    note = compose(completed, URL, report_url_expires_in_s=900)
    text = note.text
    for expected in (
        "Study reference: ACC20241203X",
        "Bone age: 10 y 11 m (131.0 months)",
        "90 % interval: 123.0 - 139.0 months",
        "Chronological age: 10 y 2 m",
        f"Bone age SDS: {completed.sds:+.2f}",
        "Interpretation: within normal limits",
        "Predicted adult height: 155.2 cm",
        f"Report: {URL} (link valid for 15 minutes)",
        "Model version: demo-0.1+abc123",
        "NOT FOR CLINICAL USE - demonstration model",
    ):
        assert expected in text


def test_sns_message_has_a_body_per_protocol(completed):
    note = compose(completed, URL)
    structured = json.loads(note.sns_message)
    assert structured["default"] == structured["email"] == note.text
    for protocol in ("sqs", "lambda", "https", "http", "email-json"):
        assert json.loads(structured[protocol]) == note.json_body
    body = note.json_body
    assert body["bone_age_months"] == 131.0 and body["sds"] == completed.sds
    assert body["interpretation"] == "within_normal_limits" and body["report_url"] == URL
    assert body["model_version"] == "demo-0.1+abc123" and body["demo_model"] is True
    assert body["study_reference"] == "ACC20241203X"


def test_message_attributes_are_sns_strings_for_filter_policies(completed):
    attrs = compose(completed, None, hospital_id="hospital-a").attributes
    assert attrs == {
        "hospital_id": {"DataType": "String", "StringValue": "hospital-a"},
        "status": {"DataType": "String", "StringValue": "completed"},
        "interpretation": {"DataType": "String", "StringValue": "within_normal_limits"},
    }


def test_rejection_names_the_reason_and_has_interpretation_none():
    result = AssessmentResult(source="x.png", status=REJECTED, reason="no_hand_found",
                              message="no hand was found in the image", study_reference="ref-7",
                              model_version="demo-0.1")
    note = compose(result, None)
    assert note.subject == "[DEMO] Bone age assessment rejected: no_hand_found - ref-7"
    assert "Reason: no_hand_found" in note.text and "no hand was found" in note.text
    assert note.attributes["interpretation"]["StringValue"] == "none"
    assert json.loads(json.loads(note.sns_message)["sqs"])["reason"] == "no_hand_found"


def test_unknown_sex_is_said_in_words_not_hidden(rng):
    _, _, result = make_case(rng, sex=None)
    note = compose(result, None)
    assert "no SDS" in note.subject
    assert "Bone age SDS: not given - sex unknown" in note.text
    assert note.attributes["interpretation"]["StringValue"] == "none"


def test_long_or_non_ascii_study_references_keep_the_subject_valid(completed):
    completed.accession_number = None
    completed.study_reference = "Réf-" + "9" * 150
    subject = compose(completed, None).subject
    assert len(subject) == SUBJECT_MAX and subject.isascii() and subject.endswith("...")


def test_real_model_has_no_demo_marks(completed):
    completed.demo_model = False
    note = compose(completed, URL)
    assert "[DEMO]" not in note.subject and "NOT FOR CLINICAL USE" not in note.text
    assert note.json_body["disclaimer"] is None


def test_the_published_message_is_the_structured_one_with_our_routing_attributes(completed):
    """What the SNS adapter publishes: compose()'s per-protocol message, our attributes on top."""
    message = build_message(completed, hospital_id="hospital-a", upload_id="u-1", report_url=URL)
    assert message.structured is True
    assert json.loads(message.message) == json.loads(compose(completed, URL).sns_message)
    assert message.subject == compose(completed, URL).subject
    assert message.attributes["interpretation"] == "within_normal_limits"
    assert message.attributes["hospital_id"] == "hospital-a"


def test_a_predicted_sex_is_mentioned_but_never_used_for_sds(rng):
    _, _, result = make_case(rng, sex=None)
    result.predicted_sex = "M"
    note = compose(result, None)
    assert "the model guessed M, not used for SDS" in note.text
    assert result.sds is None and "no SDS" in note.subject


def test_near_mature_hand_is_flagged_in_the_text_and_the_json(completed, rng):
    from boneage.clinical.text import near_maturity_text

    completed.near_skeletal_maturity = True
    completed.warnings = [near_maturity_text("F")]
    note = compose(completed, URL)
    assert "Interpretation: within normal limits (-2 to +2 SD); near skeletal maturity" in note.text
    assert f"Note: {near_maturity_text('F')}" in note.text
    assert note.json_body["near_skeletal_maturity"] is True
    assert compose(make_case(rng)[2], URL).json_body["near_skeletal_maturity"] is False
