"""Hospital isolation on the emulator, with IAM enforced: each hospital's role, as ``boneage onboard``
renders it, reaches its own folder, reports and queue and nothing of another hospital's; and the
function refuses an upload put into a hospital's folder by anyone but that hospital.

Decisions are the emulator's IAM evaluation of the deployed, literal policies (moto's
``/moto-api/reset-auth`` turns it on; ``iam_enforced`` from ``test_function_role_iam``), never a reading
of the policy text. Each request below is signed with a hospital role's session credentials, got from
STS as a gateway gets them from IAM Roles Anywhere.

The emulator gap filled for the second part (``boneage.compat.moto``): moto's S3 events do not say who
put the object; the dev stack adds ``userIdentity`` from the credentials that signed the put.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from boneage.adapters.events import uploads_from_sqs_body
from boneage.adapters.runtime import build_processor
from boneage.adapters.store import ResultStore
from boneage.config import Settings
from boneage.devstack import HospitalAccess, onboard, sample_uploads
from boneage.upload import UNKNOWN_HOSPITAL_ID, upload_id_for

from .test_function_role_iam import iam_enforced

pytestmark = pytest.mark.integration

A, B = "iso-a", "iso-b"


def _denied(call: Callable[[], Any]) -> None:
    """The call is refused by IAM's decision: 403, and not for a bad signature or token."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403, response
    # S3 answers AccessDenied; moto answers the SQS JSON protocol with an XML body botocore cannot parse,
    # so there the code is the status and the AccessDenied is in the message.
    assert "AccessDenied" in response["Error"]["Code"] + response["Error"].get("Message", ""), response


def _discard_events(stack: Any, keys: set[str], timeout_s: float = 10) -> None:
    """Take this module's upload events off the assessment queue; leave everyone else's."""
    sqs, deadline, left = stack.client("sqs"), time.monotonic() + timeout_s, set(keys)
    while left and time.monotonic() < deadline:
        for message in stack.receive_event(batch_size=10)[1]:
            found = {u.key for u in uploads_from_sqs_body(message["Body"])}
            if found and found <= left:
                sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
                left -= found
            else:
                sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
        time.sleep(0.05)
    assert not left, f"events never arrived for {sorted(left)}"


@pytest.fixture(scope="module")
def hospitals(stack: Any) -> dict[str, HospitalAccess]:
    return {h: onboard(stack, h) for h in (A, B)}


def test_a_hospitals_role_reaches_its_own_folder_reports_and_queue_and_nothing_of_anothers(stack, hospitals):
    a, b = hospitals[A], hospitals[B]
    operator = {name: stack.client(name) for name in ("s3", "sqs")}
    for h in (A, B):        # a report each, and a result waiting in each queue, put there by the service's side
        operator["s3"].put_object(Bucket=a.results_bucket, Key=f"reports/{h}/0123456789abcdef/report_sc.dcm",
                                  Body=f"report of {h}".encode(), ServerSideEncryption="aws:kms")
        operator["sqs"].send_message(QueueUrl=hospitals[h].results_queue_url, MessageBody=json.dumps({"for": h}))
    s3, sqs = a.client("s3"), a.client("sqs")
    own, other = f"incoming/{A}/iso-own.png", f"incoming/{B}/iso-intruder.png"

    with iam_enforced(stack.endpoint):
        # Allowed: A's own folder, A's own reports, A's own queue.
        s3.put_object(Bucket=a.input_bucket, Key=own, Body=b"A's upload")
        report = f"reports/{A}/0123456789abcdef/report_sc.dcm"
        assert s3.get_object(Bucket=a.results_bucket, Key=report)["Body"].read() == f"report of {A}".encode()
        received = sqs.receive_message(QueueUrl=a.results_queue_url, WaitTimeSeconds=0).get("Messages", [])
        assert [json.loads(m["Body"]) for m in received] == [{"for": A}]
        sqs.delete_message(QueueUrl=a.results_queue_url, ReceiptHandle=received[0]["ReceiptHandle"])

        # Denied: B's folder, B's report, B's queue.
        _denied(lambda: s3.put_object(Bucket=a.input_bucket, Key=other, Body=b"not A's to put"))
        _denied(lambda: s3.get_object(Bucket=a.results_bucket, Key=f"reports/{B}/0123456789abcdef/report_sc.dcm"))
        _denied(lambda: sqs.receive_message(QueueUrl=b.results_queue_url, WaitTimeSeconds=0))
        _denied(lambda: sqs.delete_message(QueueUrl=b.results_queue_url, ReceiptHandle="x"))
        # And nothing else: reading uploads back, writing reports, the service's own queue.
        _denied(lambda: s3.get_object(Bucket=a.input_bucket, Key=own))
        _denied(lambda: s3.put_object(Bucket=a.results_bucket, Key=f"reports/{A}/forged.png", Body=b"x"))
        _denied(lambda: sqs.receive_message(QueueUrl=stack.queue_url, WaitTimeSeconds=0))
        # B's credentials are B's: the same denial the other way round.
        _denied(lambda: b.client("sqs").receive_message(QueueUrl=a.results_queue_url, WaitTimeSeconds=0))

    # B's result is still there for B: A's attempt took nothing.
    [left] = operator["sqs"].receive_message(QueueUrl=b.results_queue_url, WaitTimeSeconds=0)["Messages"]
    assert json.loads(left["Body"]) == {"for": B}
    operator["sqs"].delete_message(QueueUrl=b.results_queue_url, ReceiptHandle=left["ReceiptHandle"])
    _discard_events(stack, {own})       # nothing assesses these bytes; later tests' handlers must not see them


def test_an_upload_put_into_another_hospitals_folder_is_refused_and_that_hospital_hears_nothing(
        stack, hospitals, handler, real_service):
    a, b = hospitals[A], hospitals[B]
    handler.init(build_processor(Settings.from_env(), real_service))
    clinicians_b = stack.subscribe_queue("inbox-iso-b", filter_policy={"hospital_id": [B]})
    everyone = stack.subscribe_queue("inbox-iso-all")           # the emulator's operator view, unfiltered
    girl = next(u for u in sample_uploads(3, hospitals=(A, B))
                if u.filename.endswith(".dcm") and u.expect == "completed")     # a DICOM source: SC and SR come back
    puts = {
        # A's role writing into B's folder, as a policy scoped too widely (here: IAM not enforced) would let it.
        "a-role-in-b": (a.client("s3"), f"incoming/{B}/from-a.png"),
        # An operator-level put (the emulator's default credentials, the account itself) into B's folder.
        "operator-in-b": (stack.client("s3"), f"incoming/{B}/from-operator.png"),
        # A's own upload into A's folder: assessed, and its result reaches A's gateway queue.
        "a-own": (a.client("s3"), f"incoming/{A}/own.png"),
    }
    ids = {}
    for name, (s3, key) in puts.items():
        put = s3.put_object(Bucket=a.input_bucket, Key=key, Body=girl.body, Metadata=girl.metadata)
        ids[name] = upload_id_for(a.input_bucket, key, put["VersionId"])

    stack.drain(handler.handler)

    store = ResultStore(stack.client("dynamodb"), stack.outputs["ResultsTableName"])
    for name in ("a-role-in-b", "operator-in-b"):
        record = store.read(ids[name])
        assert record is not None and record.result is not None, name
        assert (record.status, record.result.reason, record.hospital_id) == (
            "rejected", "uploader_mismatch", UNKNOWN_HOSPITAL_ID), name
        assert record.result.bone_age_months is None and record.report_keys == {}      # never assessed
    own = store.read(ids["a-own"])
    assert own is not None and (own.status, own.hospital_id) == ("completed", A)

    # B's gateway queue and B's clinicians hear nothing; the refusals went out under _unknown only.
    assert stack.received_notifications(b.results_queue_url) == []
    assert stack.received_notifications(clinicians_b) == []
    heard = {n["MessageAttributes"]["upload_id"]["Value"]: n["MessageAttributes"]["hospital_id"]["Value"]
             for n in stack.received_notifications(everyone)}
    assert {heard.get(ids[n]) for n in ("a-role-in-b", "operator-in-b")} == {UNKNOWN_HOSPITAL_ID}

    # A's gateway gets its own result, raw: the body is the boneage.assessment.v1 JSON, the routing
    # attributes are SQS message attributes.
    messages = a.client("sqs").receive_message(QueueUrl=a.results_queue_url, MessageAttributeNames=["All"],
                                               WaitTimeSeconds=1).get("Messages", [])
    [message] = [m for m in messages if m["MessageAttributes"]["upload_id"]["StringValue"] == ids["a-own"]]
    body = json.loads(message["Body"])
    assert (body["schema"], body["upload_id"], body["status"]) == ("boneage.assessment.v1", ids["a-own"], "completed")
    assert message["MessageAttributes"]["hospital_id"]["StringValue"] == A
    # ... and fetches its DICOM SR with its own role, IAM enforced: reports/<H>/<upload_id[:16]>/<file>.
    assert own.report_keys["report_sr.dcm"] == f"reports/{A}/{ids['a-own'][:16]}/report_sr.dcm"
    with iam_enforced(stack.endpoint):
        sr = a.client("s3").get_object(Bucket=a.results_bucket, Key=own.report_keys["report_sr.dcm"])["Body"].read()
    assert sr[128:132] == b"DICM"


def test_boneage_onboard_on_the_emulator_gives_working_credentials_and_the_audit_finds_unfiltered_queues(
        stack, capsys):
    from boneage.cli import main

    assert main(["onboard", "iso-cli", "--stack", stack.stack_name, "--endpoint-url", stack.endpoint, "--json"]) == 0
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (line["event"], line["hospital_id"]) == ("onboarded", "iso-cli")
    assert line["results_queue_url"].endswith(f"{stack.stack_name}-iso-cli-results")
    parameter = stack.client("ssm").get_parameter(Name=f"{stack.outputs['UploaderRegistryPrefix']}iso-cli")
    assert parameter["Parameter"]["Value"] == line["role_id"]
    env = line["credentials"]
    session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"], region_name="us-east-1",
                                    aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                    aws_session_token=env["AWS_SESSION_TOKEN"])
    s3 = session.client("s3", endpoint_url=stack.endpoint)
    with iam_enforced(stack.endpoint):
        s3.put_object(Bucket=line["input_bucket"], Key="incoming/iso-cli/cli.png", Body=b"from the CLI's session")
        _denied(lambda: s3.put_object(Bucket=line["input_bucket"], Key=f"incoming/{A}/cli.png", Body=b"x"))
    _discard_events(stack, {"incoming/iso-cli/cli.png"})

    # The rendering is what was deployed; the audit names the one unfiltered queue this test adds.
    assert main(["onboard", "iso-cli", "--stack", stack.stack_name, "--endpoint-url", stack.endpoint,
                 "--render", "--json"]) == 0
    rendered = json.loads(capsys.readouterr().out)["template"]
    assert rendered["Resources"]["ResultsSubscription"]["Properties"]["FilterPolicy"] == {"hospital_id": ["iso-cli"]}
    unfiltered = stack.subscribe_queue("inbox-iso-unfiltered")
    assert main(["onboard", "iso-cli", "--stack", stack.stack_name, "--endpoint-url", stack.endpoint,
                 "--audit", "--json"]) == 1
    audit = json.loads(capsys.readouterr().out)
    endpoints = {f["endpoint"] for f in audit["unfiltered"]}
    assert stack.queue_arn(unfiltered) in endpoints
    assert not endpoints & {stack.queue_arn(line["results_queue_url"])}
