"""The results queue: completed results of our uploads become deliveries, rejections stay local,
a message is deleted only once recorded, and the same result twice is recorded once."""

from __future__ import annotations

import json

import pytest

from boneage.gateway.results import ResultsConsumer, unwrap
from boneage.gateway.spool import Spool, ref_for
from boneage.upload import object_ref_for

from .conftest import instance

UID = "1.2.826.0.1.3680043.8.498.101"
REF = ref_for(UID)
KEY = f"incoming/st-mary/{REF}.dcm"
OBJECT_REF = object_ref_for("input", KEY)
REPORTS = {"report.png": "reports/st-mary/0123456789abcdef/report.png",
           "report_sc.dcm": "reports/st-mary/0123456789abcdef/report_sc.dcm",
           "report_sr.dcm": "reports/st-mary/0123456789abcdef/report_sr.dcm"}


def body(status="completed", *, upload_id="u1", object_ref=OBJECT_REF, reason=None, report_keys=REPORTS) -> dict:
    return {"schema": "boneage.assessment.v1", "upload_id": upload_id, "status": status, "reason": reason,
            "object_ref": object_ref, "report_keys": report_keys}


def sns(b: dict) -> str:
    return json.dumps({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:t", "Message": json.dumps(b)})


@pytest.fixture
def consumer(config, sqs) -> ResultsConsumer:
    spool = Spool(config.spool_dir).create()
    spool.receive(UID, instance(UID))
    spool.mark_uploaded(REF, {"key": KEY, "upload_id": "u1"})
    return ResultsConsumer(config, spool, sqs)


def test_raw_and_sns_enveloped_bodies_read_the_same():
    assert unwrap(json.dumps(body())) == unwrap(sns(body())) == body()
    assert unwrap("not json") is None and unwrap(json.dumps({"schema": "other"})) is None


def test_a_completed_result_becomes_one_delivery_of_the_sc_and_sr_whatever_the_redeliveries(consumer, sqs):
    sqs.send(sns(body()))
    sqs.send(json.dumps(body()))            # redelivered, raw this time
    consumer.poll_once()
    (delivery,) = consumer.spool.pending_deliveries()
    assert delivery.upload_id == "u1" and delivery.ref == REF
    assert delivery.report_keys == {k: v for k, v in REPORTS.items() if k.endswith(".dcm")}
    assert sqs.messages == {} and len(sqs.deleted) == 2


def test_a_rejection_is_kept_for_the_operator_and_never_delivered(consumer, sqs):
    sqs.send(sns(body("rejected", reason="unsupported_modality", report_keys={})))
    consumer.poll_once()
    assert consumer.spool.pending_deliveries() == []
    assert consumer.spool.status()["outcomes"] == [
        {"upload_id": "u1", "ref": REF, "status": "rejected", "reason": "unsupported_modality"}]
    assert sqs.messages == {}


def test_a_result_found_by_upload_id_when_it_names_no_object_ref(consumer, sqs):
    sqs.send(json.dumps(body(object_ref=None)))
    consumer.poll_once()
    assert [d.ref for d in consumer.spool.pending_deliveries()] == [REF]


def test_a_result_for_an_upload_not_ours_is_dropped_and_one_still_in_the_inbox_is_kept(consumer, sqs):
    sqs.send(json.dumps(body(upload_id="u9", object_ref=object_ref_for("input", "incoming/st-mary/other.png"))))
    other = "1.2.826.0.1.3680043.8.498.202"
    consumer.spool.receive(other, instance(other))      # received, upload not recorded yet (restart)
    kept = sqs.send(json.dumps(body(upload_id="u2",
                                    object_ref=object_ref_for("input", f"incoming/st-mary/{ref_for(other)}.dcm"))))
    consumer.poll_once()
    assert list(sqs.messages) == [kept] and sqs.released == [kept]
    assert consumer.spool.pending_deliveries() == []


def test_a_completed_result_without_dicom_reports_is_kept_not_delivered(consumer, sqs):
    sqs.send(json.dumps(body(report_keys={"report.png": "k"})))
    consumer.poll_once()
    assert consumer.spool.pending_deliveries() == []
    assert consumer.spool.status()["outcomes"][0]["reason"] == "no_dicom_reports"
