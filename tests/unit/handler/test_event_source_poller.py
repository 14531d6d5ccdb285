"""The event source mapping's rules as ``boneage.devstack.poller`` plays them for ``make local``."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from boneage.adapters.events import uploads_from_sqs_body
from boneage.bench.load import s3_event
from boneage.devstack.poller import failed_ids, sqs_event

ARN = "arn:aws:sqs:us-east-1:123456789012:assess"


def _message(i: int, body: str = "{}", receives: int = 1) -> dict:
    return {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body, "MD5OfBody": "x",
            "Attributes": {"ApproximateReceiveCount": str(receives)}}


def test_only_the_messages_named_in_batch_item_failures_stay_on_the_queue():
    messages = [_message(i) for i in range(3)]
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "m1"}]}, messages) == {"m1"}
    assert failed_ids({"batchItemFailures": []}, messages) == set()
    assert failed_ids(None, messages) == set()          # a handler returning nothing succeeded


def test_a_response_naming_a_message_not_in_the_batch_fails_the_whole_batch():
    messages = [_message(i) for i in range(2)]
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "elsewhere"}]}, messages) == {"m0", "m1"}


def test_the_event_carries_what_the_handler_reads_receive_count_and_the_s3_upload():
    body = s3_event("in-bucket", "incoming/st-mary/a b.png", "v1", 123)
    [record] = sqs_event([_message(0, body, receives=3)], ARN)["Records"]
    parsed = SQSRecord(record)
    assert parsed.attributes.approximate_receive_count == "3" and parsed.event_source_arn == ARN
    [upload] = uploads_from_sqs_body(parsed.body)
    assert (upload.bucket, upload.key, upload.version_id, upload.size) == ("in-bucket", "incoming/st-mary/a b.png",
                                                                           "v1", 123)
