"""scripts/redrive.py: reprocess dead-lettered events in-process, or move them back to the queue."""

from __future__ import annotations

import json

from boneage.adapters.redrive import move, redrive


def _event_body(bucket: str, key: str, version: str) -> str:
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                    "s3": {"bucket": {"name": bucket},
                                           "object": {"key": key, "versionId": version}}}]})


def _queues(aws):
    sqs = aws.clients.sqs
    return sqs, sqs.create_queue(QueueName="dlq")["QueueUrl"], sqs.create_queue(QueueName="main")["QueueUrl"]


def test_redrive_completes_dead_lettered_uploads_and_empties_the_dlq(aws):
    sqs, dlq, _ = _queues(aws)
    put = aws.put("incoming/st-mary/x.png", b"not an image")
    sqs.send_message(QueueUrl=dlq, MessageBody=_event_body(aws.input_bucket, "incoming/st-mary/x.png", put["VersionId"]))
    report = redrive(aws.processor(), sqs, dlq)
    assert report.as_dict() == {"messages": 1, "reprocessed": {"rejected": 1}, "still_failing": 0, "moved": 0}
    assert [i["status"] for i in aws.items()] == ["rejected"]
    assert "Messages" not in sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=0)


def test_redrive_keeps_the_message_and_records_failed_while_the_fault_persists(aws, faults):
    sqs, dlq, _ = _queues(aws)
    put = aws.put("incoming/st-mary/x.png", b"not an image")
    sqs.send_message(QueueUrl=dlq, MessageBody=_event_body(aws.input_bucket, "incoming/st-mary/x.png", put["VersionId"]))
    faults.down.add("sns")
    report = redrive(aws.processor(), sqs, dlq)
    assert report.still_failing == 1 and report.reprocessed == {"fault": 1}
    [item] = aws.items()        # the result was written; its notification is what keeps failing
    assert item["status"] == "rejected" and "notified_status" not in item
    attrs = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_move_sends_dead_lettered_events_back_to_the_queue(aws):
    sqs, dlq, main = _queues(aws)
    for n in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=f'{{"n": {n}}}')
    assert move(sqs, dlq, main).moved == 3
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=main, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(bodies) == ['{"n": 0}', '{"n": 1}', '{"n": 2}']


def test_the_script_moves_both_the_dead_letter_queue_and_the_finalizers_parked_events(aws, monkeypatch, capsys):
    import runpy
    from pathlib import Path

    sqs, dlq, main = _queues(aws)
    parked = sqs.create_queue(QueueName="redrive")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody='{"n": "not yet settled"}')
    sqs.send_message(QueueUrl=parked, MessageBody='{"n": "settled by the finalizer"}')
    for name, value in {"DLQ_URL": dlq, "REDRIVE_QUEUE_URL": parked, "QUEUE_URL": main}.items():
        monkeypatch.setenv(name, value)
    script = runpy.run_path(str(Path(__file__).resolve().parents[3] / "scripts" / "redrive.py"))
    assert script["main"](["--move"]) == 0
    assert [r["moved"] for r in json.loads(capsys.readouterr().out)] == [1, 1]
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=main, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(bodies) == ['{"n": "not yet settled"}', '{"n": "settled by the finalizer"}']
