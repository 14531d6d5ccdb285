"""S3 event parsing: URL-decoded keys, hospital ids, test events, the idempotency key."""

from __future__ import annotations

import json

from boneage.adapters.events import uploads_from_s3_event, uploads_from_sqs_body
from boneage.upload import Upload, upload_id_for


def _s3_event(key: str, version: str | None = "v1", name: str = "ObjectCreated:Put") -> dict:
    obj = {"key": key, "size": 10, **({"versionId": version} if version else {})}
    return {"Records": [{"eventSource": "aws:s3", "eventName": name, "eventTime": "2025-01-01T00:00:00Z",
                         "s3": {"bucket": {"name": "b"}, "object": obj}}]}


def test_keys_are_url_decoded_with_plus_as_space():
    [upload] = uploads_from_s3_event(_s3_event("incoming/st-mary/upload+2002%2B1.png"))
    assert upload.key == "incoming/st-mary/upload 2002+1.png"
    assert upload.hospital_id("incoming/") == "st-mary"
    assert upload.extension == ".png"


def test_keys_outside_the_hospital_layout_have_no_hospital():
    for key in ("incoming/scan.png", "other/st-mary/scan.png", "incoming/bad id!/scan.png", "incoming/st-mary/"):
        assert Upload("b", key, "v").hospital_id("incoming/") is None, key


def test_s3_test_event_and_deletes_yield_no_uploads():
    assert uploads_from_sqs_body(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    assert list(uploads_from_s3_event(_s3_event("incoming/h/x.png", name="ObjectRemoved:Delete"))) == []
    assert uploads_from_sqs_body("not json") == []


def test_upload_id_is_stable_per_object_version_and_free_of_the_key():
    a = upload_id_for("b", "incoming/h/Doe_Jane.dcm", "v1")
    assert a == upload_id_for("b", "incoming/h/Doe_Jane.dcm", "v1")
    assert a != upload_id_for("b", "incoming/h/Doe_Jane.dcm", "v2")
    assert len(a) == 32 and "Doe" not in a


def test_the_principal_that_put_the_object_is_kept_and_a_missing_one_is_none():
    event = _s3_event("incoming/st-mary/a.png")
    event["Records"][0]["userIdentity"] = {"principalId": "AWS:AROAEXAMPLEROLEID:st-mary-gateway"}
    [upload] = uploads_from_sqs_body(json.dumps(event))
    assert upload.principal_id == "AWS:AROAEXAMPLEROLEID:st-mary-gateway"
    for identity in (None, {}, {"principalId": ""}, "AWS:AROA", {"principalId": 7}):
        event["Records"][0]["userIdentity"] = identity
        [upload] = uploads_from_s3_event(event)
        assert upload.principal_id is None, identity
