"""Fuzz: hostile S3 user metadata and DICOM text values through the whole path, handler to notification.

Each example uploads one DICOM (AccessionNumber, BodyPartExamined, PatientSex, ImageLaterality drawn
from unicode, control characters, bidi marks and very long values) with drawn user metadata into the
in-process AWS, runs the processor, and checks: exactly one record, terminal; exactly one notification;
no string in the record, the notification (subject, attributes, the JSON body and the e-mail text) or the
log lines contains a raw control or format character; and the e-mail names no study.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from boneage.imaging.metadata import KNOWN_KEYS
from boneage.imaging.testing import dicom_bytes
from boneage.service import AssessmentService
from boneage.upload import TERMINAL, Upload

from .support import FakeAssessor

# C0 (tab, CR, LF included), DEL, C1, bidi embeddings/overrides/isolates, zero-width and BOM, separators.
RAW = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff]")
HOSTILE = "\x00\x1b\r\n\t\x7f\x85\x9b\u202e\u202d\u2066\u200b\ufeff\u2028é中A-=?/\\^"
LATIN1_HOSTILE = "\x00\x1b\r\n\t\x7f\x85\x9bAéL R"


def _values(alphabet: str) -> st.SearchStrategy[str]:
    short = st.text(alphabet=st.sampled_from(alphabet), max_size=24)
    mixed = st.text(max_size=24)                                    # any unicode
    long = st.tuples(st.text(alphabet=st.sampled_from(alphabet), min_size=1, max_size=8),
                     st.integers(2, 4000)).map(lambda t: t[0] * t[1])   # up to ~32 KB
    return st.one_of(short, mixed, long)


def _cs_values() -> st.SearchStrategy[str]:
    # CS values are written in the default repertoire (latin-1 at most): draw within it.
    return st.one_of(st.text(alphabet=st.sampled_from(LATIN1_HOSTILE), max_size=24),
                     st.sampled_from(["M", "F", "L", "R", "HAND"]))


_METADATA_VALUES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127, exclude_characters="\r\n"), max_size=24),
    st.sampled_from(["M", "F", "120", "20150101", "L", "ref-7", " 100.5 "]),
    st.integers(65, 2500).map(lambda n: "9" * n),
)
_METADATA = st.dictionaries(st.sampled_from([*KNOWN_KEYS, "x-other"]), _METADATA_VALUES, max_size=4)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _raw(strings: list[str]) -> list[str]:
    return [s[:80] for s in strings if RAW.search(s)]


@pytest.fixture(scope="module")
def hand() -> np.ndarray:
    from boneage.phantom import render_sample

    image, _ = render_sample(np.random.default_rng(5), kind="left", bone_age_months=120.0, male=False, size=128)
    return (image * 4095).astype(np.uint16)


def test_hostile_text_ends_in_one_clean_record_and_one_clean_notification(aws, hand, caplog, capsys):
    processor = aws.processor(AssessmentService(FakeAssessor()))
    counter = iter(range(10**6))

    @settings(max_examples=int(os.environ.get("BONEAGE_FUZZ_EXAMPLES", "25")), deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(accession=_values(HOSTILE), body_part=_cs_values(), sex=_cs_values(), side=_cs_values(),
           metadata=_METADATA)
    def one(accession: str, body_part: str, sex: str, side: str, metadata: dict[str, str]) -> None:
        data = dicom_bytes(hand, bits_stored=12, modality="DX", tags={
            "SpecificCharacterSet": "ISO_IR 192", "AccessionNumber": accession, "BodyPartExamined": body_part,
            "PatientSex": sex, "ImageLaterality": side, "PatientName": "Zzyzxa^Quentinella",
            "PatientBirthDate": "20150101", "StudyDate": "20250101",
        })
        key = f"incoming/st-mary/fuzz-{next(counter)}.dcm"
        try:
            put = aws.put(key, data, metadata)
        except Exception:           # botocore refuses it (a line break or non-ASCII in a header): S3 never sees it
            reject()
        caplog.clear()
        capsys.readouterr()
        upload = Upload(aws.input_bucket, key, put.get("VersionId"))
        outcome = processor.process(upload)

        items = [i for i in aws.items() if i["upload_id"] == upload.upload_id]
        notes = aws.notifications("st-mary")
        assert len(items) == 1 and items[0]["status"] in TERMINAL and outcome.outcome == items[0]["status"]
        assert len(notes) == 1 and items[0]["notified_status"] == items[0]["status"]
        assert _raw(_strings(items[0])) == []

        note = notes[0]
        assert note["MessageAttributes"]["upload_id"]["Value"] == upload.upload_id
        body = json.loads(note["Message"])                  # the SQS subscriber's JSON
        assert body["upload_id"] == upload.upload_id and body["status"] == items[0]["status"]
        assert _raw([note.get("Subject", "")] + _strings(body) + _strings(note["MessageAttributes"])) == []
        # The e-mail part of the same message, as an e-mail subscriber would receive it.
        from boneage.adapters.store import record_from_item
        from boneage.notification import build_message

        stored = record_from_item(items[0]).result
        assert stored is not None

        message = build_message(stored, hospital_id="st-mary", upload_id=upload.upload_id,
                                report_url=None)
        email = json.loads(message.message)["email"]
        assert _raw(email.splitlines() + [message.subject]) == []
        # The e-mail does not depend on the study's identifiers at all.
        anonymous = dataclasses.replace(stored, accession_number=None, study_reference=None,
                                        study_instance_uid=None, warnings=[], message="")
        assert json.loads(build_message(anonymous, hospital_id="st-mary", upload_id=upload.upload_id,
                                        report_url=None).message)["email"] == email

        # Our log lines: Powertools writes one JSON object per line to stdout; any other record of
        # ours goes through logging. Neither may carry a raw control character.
        logs = capsys.readouterr()
        ours = [r.getMessage() for r in caplog.records if r.name.startswith("boneage")]
        for line in (logs.out + logs.err).splitlines() + ours:
            assert not RAW.search(line), line[:200]

    with caplog.at_level(logging.DEBUG, logger="boneage"):
        one()


def test_a_30_kb_accession_number_with_a_fake_link_is_dropped_and_the_result_notified(aws, hand):
    """The reported attack: the old path read it whole, put its lines into the clinician e-mail and
    (three JSON copies plus two e-mail copies per message) pushed the SNS message past 256 KB."""
    accession = ("A" * 100 + "\r\nReport: https://evil.example/phish\r\n") * 220
    data = dicom_bytes(hand, bits_stored=12, modality="DX", tags={
        "AccessionNumber": accession, "PatientBirthDate": "20150101", "StudyDate": "20250101"})
    put = aws.put("incoming/st-mary/long.dcm", data)
    upload = Upload(aws.input_bucket, "incoming/st-mary/long.dcm", put.get("VersionId"))
    outcome = aws.processor(AssessmentService(FakeAssessor())).process(upload)
    [item] = aws.items()
    assert outcome.notified and item["status"] == "completed" and item["notified_status"] == "completed"
    assert item["accession_number"] is None and item["study_reference"] is None
    assert any("AccessionNumber is longer than its DICOM limit" in w for w in item["warnings"])
    [note] = aws.notifications("st-mary")
    assert "evil" not in json.dumps(note) and len(json.dumps(note)) < 64 * 1024
