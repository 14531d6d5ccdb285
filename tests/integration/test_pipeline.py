"""Upload -> S3 notification -> SQS -> handler (real service, real engine) -> record -> SNS -> subscribed SQS."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from boneage.adapters.runtime import build_processor
from boneage.adapters.store import ResultStore
from boneage.config import Settings
from boneage.devstack import onboard, sample_uploads
from boneage.upload import upload_id_for

pytestmark = pytest.mark.integration

HOSPITALS = ("it-st-mary", "it-north-gen")


def _attrs(note: dict) -> dict[str, str]:
    return {k: v["Value"] for k, v in note["MessageAttributes"].items()}


def test_each_upload_ends_in_one_record_and_each_hospital_hears_only_its_own(stack, handler, real_service):
    handler.init(build_processor(Settings.from_env(), real_service))
    inboxes = {h: stack.subscribe_queue(f"inbox-{h}", filter_policy={"hospital_id": [h]}) for h in HOSPITALS}
    everyone = stack.subscribe_queue("inbox-all-it")
    uploads = sample_uploads(11, hospitals=HOSPITALS)
    s3 = {h: onboard(stack, h).client("s3") for h in HOSPITALS}      # each hospital uploads as its own role
    ids = {}
    for u in uploads:
        put = s3[u.hospital_id].put_object(Bucket=stack.input_bucket, Key=u.key, Body=u.body, Metadata=u.metadata)
        ids[u.name] = upload_id_for(stack.input_bucket, u.key, put["VersionId"])
    loose = stack.client("s3").put_object(Bucket=stack.input_bucket, Key="incoming/loose.png", Body=uploads[1].body)

    assert stack.drain(handler.handler) >= len(uploads) + 1

    store = ResultStore(stack.client("dynamodb"), stack.outputs["ResultsTableName"])
    items = {u.name: store.get(ids[u.name]) for u in uploads}
    girl, boy, right, bad = (items[u.name] for u in uploads)
    assert girl["status"] == "completed" and girl["sex"] == "F" and girl["bone_age_months"] is not None
    assert girl["chronological_age_months"] is not None and girl["accession_number"] == "ACC1001"
    assert sorted(girl["report_keys"]) == ["report.png", "report_sc.dcm", "report_sr.dcm"]
    assert boy["status"] == "completed" and boy["sex"] == "M" and boy["chronological_age_months"] == 126
    assert boy["study_reference"] == "REF-2002" and boy["bone_age_months"] is not None
    assert right["status"] in ("completed", "rejected")      # QC may refuse; either way one terminal record
    if right["status"] == "completed":
        assert right["laterality"] == "R" and right["mirrored"] is True
    assert (bad["status"], bad["reason"]) == ("rejected", "not_an_image")
    unknown = store.get(upload_id_for(stack.input_bucket, "incoming/loose.png", loose["VersionId"]))
    assert (unknown["status"], unknown["reason"]) == ("rejected", "unknown_hospital")
    assert all(i["notified_status"] == i["status"] for i in items.values())

    # The GSI answers "this hospital's recent results", newest first.
    recent = store.recent_for_hospital(HOSPITALS[0])
    assert {i["upload_id"] for i in recent} == {ids[u.name] for u in uploads if u.hospital_id == HOSPITALS[0]}
    assert [i["created_at"] for i in recent] == sorted((i["created_at"] for i in recent), reverse=True)

    for h, url in inboxes.items():
        notes = stack.received_notifications(url)
        mine = {ids[u.name] for u in uploads if u.hospital_id == h}
        assert {_attrs(n)["upload_id"] for n in notes} == mine and len(notes) == len(mine)
        assert all(_attrs(n)["hospital_id"] == h for n in notes)
        for n in notes:
            body = json.loads(n["Message"])
            assert body["status"] == _attrs(n)["status"]
            if body["status"] == "completed":
                assert body["bone_age_months"] is not None and body["report_url"]
    # The unfiltered inbox hears every upload of this test once, the unknown hospital's included. The
    # stack is shared by the session: a message an earlier test left in the queue may be delivered by
    # this test's drain and notified too, so only this test's uploads are counted.
    ours = {*ids.values(), unknown["upload_id"]}
    heard = [_attrs(n)["upload_id"] for n in stack.received_notifications(everyone)]
    assert sorted(u for u in heard if u in ours) == sorted(ours)
    # Nothing left to deliver and nothing dead-lettered. (Visible messages only: moto's in-flight count
    # keeps messages an earlier test's redrive policy moved to the DLQ.)
    assert stack.receive_event(stack.queue_url)[1] == [] and stack.receive_event(stack.dlq_url)[1] == []


def test_the_same_event_delivered_three_times_concurrently_gives_one_record_and_one_notification(
        stack, handler, real_service):
    handler.init(build_processor(Settings.from_env(), real_service))
    inbox = stack.subscribe_queue("inbox-it-dup", filter_policy={"hospital_id": ["it-dup"]})
    sample = sample_uploads(5, hospitals=("it-dup", "it-dup"))[1]
    put = onboard(stack, "it-dup").client("s3").put_object(Bucket=stack.input_bucket, Key=sample.key,
                                                           Body=sample.body, Metadata=sample.metadata)
    sqs = stack.client("sqs")
    # S3 sent one event; at-least-once delivery may hand us the same one again: copy it twice.
    event, [message] = stack.receive_event()
    for _ in range(2):
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=message["Body"])
    sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                  VisibilityTimeout=0)
    with ThreadPoolExecutor(3) as pool:      # three concurrent invocations, one message each
        list(pool.map(lambda _: stack.deliver_once(handler.handler), range(3)))
    stack.drain(handler.handler)            # the in-progress losers retry and find the result

    store = ResultStore(stack.client("dynamodb"), stack.outputs["ResultsTableName"])
    upload_id = upload_id_for(stack.input_bucket, sample.key, put["VersionId"])
    assert [i["upload_id"] for i in store.recent_for_hospital("it-dup")] == [upload_id]
    assert store.get(upload_id)["status"] == "completed"
    assert len(stack.received_notifications(inbox)) == 1
