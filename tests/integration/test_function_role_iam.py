"""The function role's S3 permissions, with IAM enforced by the emulator.

Moto accepts any credentials unless told otherwise, so a permission the role lacks passes unseen.
The role lacked ``s3:ListBucket``, and S3 answers a GET of a missing key or version with 403
AccessDenied, not 404, to a caller that may not list the bucket: a deleted upload would be retried
and end ``failed`` instead of ``rejected`` (object_not_found). Here IAM is enforced (moto's
``/moto-api/reset-auth``, the server-mode switch of INITIAL_NO_AUTH_ACTION_COUNT) for the calls
under test, which are signed as IAM users holding the deployed function role's own policy.

Two gaps of the emulator are filled, and said so:
- Moto enforces identity policies but not S3's rule for missing keys; ``_aws_missing_key_rule`` adds
  it to the in-process emulator (moto's S3 responses are private API: the 403 case below fails if the
  patch stops taking effect).
- Moto checks DynamoDB, SNS and SSM actions against resource ``*``, which no resource-scoped statement
  matches, so the handler's table, topic and registry clients sign as an operator allowed everything; its S3
  client, the permission under test, signs as the function.
"""

from __future__ import annotations

import ast
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from boneage.adapters.events import uploads_from_sqs_body
from boneage.adapters.runtime import CLIENT_CONFIG, Clients, build_processor
from boneage.adapters.s3 import ObjectReader
from boneage.adapters.store import ResultStore
from boneage.config import Settings
from boneage.devstack import onboard
from boneage.errors import Rejection, TransientFault
from boneage.upload import upload_id_for

pytestmark = pytest.mark.integration

HOSPITAL = "it-iam"


@contextmanager
def iam_enforced(endpoint: str) -> Iterator[None]:
    """Every request to the emulator is authenticated and authorised while inside."""
    def reset(count: str) -> str:
        # Not a form: werkzeug would consume a form-encoded body before moto reads the number.
        request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count.encode(), method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]

    previous = reset("0")
    try:
        yield
    finally:
        reset(previous)


@pytest.fixture
def _aws_missing_key_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """S3's rule: a missing key or version is 404 to a caller allowed s3:ListBucket, else 403."""
    from moto.s3.exceptions import MissingKey, MissingVersion
    from moto.s3.responses import S3Response

    get, head = S3Response._key_response_get, S3Response.head_object

    def may_list(response: Any) -> None:
        response.data["Action"] = "ListBucket"      # raises AccessDenied when IAM is enforced and denies it
        response._authenticate_and_authorize_s3_action(bucket_name=response.bucket_name)

    def get_with_rule(self: Any, query: Any, key_name: str) -> Any:
        try:
            return get(self, query, key_name)
        except (MissingKey, MissingVersion):
            may_list(self)
            raise

    def head_with_rule(self: Any, bucket_name: str, query: Any, key_name: str, headers: Any) -> Any:
        status, response_headers, body = head(self, bucket_name, query, key_name, headers)
        if status == 404:
            may_list(self)
        return status, response_headers, body

    monkeypatch.setattr(S3Response, "_key_response_get", get_with_rule)
    monkeypatch.setattr(S3Response, "head_object", head_with_rule)


def _function_policy(stack: Any) -> dict[str, Any]:
    """The inline policy of the function role the stack deployed (SAM's translation of the template)."""
    summaries = stack.client("cloudformation").list_stack_resources(StackName=stack.stack_name)
    role = next(s["PhysicalResourceId"] for s in summaries["StackResourceSummaries"]
                if s["ResourceType"] == "AWS::IAM::Role" and s["LogicalResourceId"] == "AssessFunctionRole")
    iam = stack.client("iam")
    [name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    # Moto's CloudFormation stores the document as Python's repr of the dict, not as JSON; SAM writes no
    # Version, which moto's PutUserPolicy requires.
    document = document if isinstance(document, dict) else ast.literal_eval(document)
    return {"Version": "2012-10-17", **document}


def _without_list_bucket(policy: dict[str, Any]) -> dict[str, Any]:
    statements = []
    for s in policy["Statement"]:
        actions = [a for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]) if a != "s3:ListBucket"]
        if actions:
            statements.append({**s, "Action": actions})
    return {**policy, "Statement": statements}


@pytest.fixture(scope="module")
def identities(stack: Any) -> dict[str, boto3.session.Session]:
    """Sessions of IAM users: the function's policy, the same less s3:ListBucket, and an operator."""
    policy = _function_policy(stack)
    policies = {
        "it-iam-function": policy,
        "it-iam-function-no-list": _without_list_bucket(policy),
        "it-iam-operator": {"Version": "2012-10-17",
                            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
    }
    iam = stack.client("iam")
    sessions = {}
    for user, document in policies.items():
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="policy", PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        sessions[user] = boto3.session.Session(aws_access_key_id=key["AccessKeyId"],
                                               aws_secret_access_key=key["SecretAccessKey"],
                                               region_name="us-east-1")
    return sessions


def _client(session: boto3.session.Session, service: str, stack: Any) -> Any:
    return session.client(service, endpoint_url=stack.endpoint, config=CLIENT_CONFIG)


def _deleted_upload(stack: Any, name: str) -> tuple[str, str]:
    """An upload whose version was then deleted for good (as the lifecycle's expiry or the hospital does).
    Put by the hospital's own role: the function assesses only what the folder's hospital put."""
    s3 = onboard(stack, HOSPITAL).client("s3")
    key = f"incoming/{HOSPITAL}/{name}"
    version = s3.put_object(Bucket=stack.input_bucket, Key=key, Body=b"withdrawn before it was read")["VersionId"]
    stack.client("s3").delete_object(Bucket=stack.input_bucket, Key=key, VersionId=version)
    return key, version


def _discard_events(stack: Any, count: int, timeout_s: float = 10) -> None:
    """Take this module's upload events off the queue (S3 queues them asynchronously, even in moto)."""
    sqs, deadline = stack.client("sqs"), time.monotonic() + timeout_s
    while count and time.monotonic() < deadline:
        for message in stack.receive_event(batch_size=10)[1]:
            keys = [u.key for u in uploads_from_sqs_body(message["Body"])]
            assert keys and all(k.startswith(f"incoming/{HOSPITAL}/") for k in keys), f"not this module's: {keys}"
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
            count -= 1
        time.sleep(0.05)
    assert count == 0, f"{count} upload events never arrived"


def _error(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_deleted_upload_is_404_to_the_function_and_403_without_list_bucket(stack, identities,
                                                                              _aws_missing_key_rule):
    key, version = _deleted_upload(stack, "gone-before-read.png")
    kept = f"incoming/{HOSPITAL}/still-here.png"
    stack.client("s3").put_object(Bucket=stack.input_bucket, Key=kept, Body=b"still here")
    bucket = stack.input_bucket
    function = _client(identities["it-iam-function"], "s3", stack)
    no_list = _client(identities["it-iam-function-no-list"], "s3", stack)
    with iam_enforced(stack.endpoint):
        assert _error(lambda: function.get_object(Bucket=bucket, Key=key, VersionId=version)) == ("NoSuchVersion", 404)
        assert _error(lambda: function.get_object(Bucket=bucket, Key=key)) == ("NoSuchKey", 404)
        assert _error(lambda: function.head_object(Bucket=bucket, Key=key)) == ("404", 404)
        with pytest.raises(Rejection) as rejected:
            ObjectReader(function, max_bytes=1 << 20).fetch(bucket, key, version)
        assert rejected.value.reason == "object_not_found"

        # The same policy less s3:ListBucket: the object it may read is read; the missing one is 403.
        assert no_list.get_object(Bucket=bucket, Key=kept)["Body"].read() == b"still here"
        assert _error(lambda: no_list.get_object(Bucket=bucket, Key=key, VersionId=version)) == ("AccessDenied", 403)
        assert _error(lambda: no_list.head_object(Bucket=bucket, Key=key)) == ("403", 403)
        with pytest.raises(TransientFault):     # retried, and on the last attempt recorded `failed`
            ObjectReader(no_list, max_bytes=1 << 20).fetch(bucket, key, version)
        # And IAM is really enforced: the emulator's default credentials are refused.
        assert _error(lambda: stack.client("s3").get_object(Bucket=bucket, Key=kept))[1] == 403
    _discard_events(stack, 2)          # nothing assesses these uploads: the next test's handler must not see them


def test_the_handler_rejects_a_deleted_upload_once_under_the_function_roles_policy(
        stack, handler, real_service, identities, _aws_missing_key_rule):
    inbox = stack.subscribe_queue("inbox-it-iam", filter_policy={"hospital_id": [HOSPITAL]})
    key, version = _deleted_upload(stack, "withdrawn.png")
    operator = identities["it-iam-operator"]
    clients = Clients(s3=_client(identities["it-iam-function"], "s3", stack),
                      dynamodb=_client(operator, "dynamodb", stack), sns=_client(operator, "sns", stack),
                      sqs=_client(identities["it-iam-function"], "sqs", stack), ssm=_client(operator, "ssm", stack))
    handler.init(build_processor(Settings.from_env(), real_service, clients=clients))

    def enforced(event: dict[str, Any], context: Any) -> Any:
        with iam_enforced(stack.endpoint):
            return handler.handler(event, context)

    try:
        assert stack.deliver_once(enforced) == 1
        # Moto's S3 events name no version, so the handler pinned it with a HEAD (404 too); AWS's name it.
        records = ResultStore(stack.client("dynamodb"), stack.outputs["ResultsTableName"]).recent_for_hospital(HOSPITAL)
        assert len(records) == 1, "no terminal record: the delivery faulted and the upload would be retried"
        [record] = records
        assert record["upload_id"] in (upload_id_for(stack.input_bucket, key, version),
                                       upload_id_for(stack.input_bucket, key, None))
        assert (record["status"], record["reason"]) == ("rejected", "object_not_found")
        assert record["notified_status"] == "rejected"
        [note] = stack.received_notifications(inbox)
        assert json.loads(note["Message"])["reason"] == "object_not_found"
        assert stack.receive_event()[1] == []      # acknowledged on the first delivery, not retried
    finally:
        # A failed run must not leave its event for the next test's handler.
        sqs = stack.client("sqs")
        for message in stack.receive_event()[1]:
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
