"""Contract of ``boneage.compat.moto``: on the moto it is written for, an S3 event names the principal that
signed the put, as AWS's does: an assumed role's session, an IAM user, or the account itself.

Moto in its in-process mode (``mock_aws``: no sockets); the dev stack's server mode goes through the
same ``S3Response`` and ``notifications`` code (``tests/integration/test_hospital_isolation.py``).
"""

from __future__ import annotations

import json

import boto3
import moto
import pytest
from moto import mock_aws

from boneage.compat import moto as compat

ACCOUNT = "123456789012"


def test_the_installed_moto_is_in_the_supported_range():
    version = tuple(int(p) for p in moto.__version__.split(".")[:2])
    assert compat.SUPPORTED[0] <= version < compat.SUPPORTED[1]
    from moto.s3 import notifications

    assert callable(notifications._get_s3_event)       # the private function the stamp wraps


@pytest.mark.parametrize(("headers", "query", "key"), [
    ({"Authorization": "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE123/20250101/us-east-1/s3/aws4_request, "
                       "SignedHeaders=host, Signature=abc"}, "", "ASIAEXAMPLE123"),
    ({}, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20250101%2Fus-east-1", "AKIAEXAMPLE"),
    ({}, "", None),
])
def test_the_signing_access_key_is_read_from_the_header_or_a_presigned_url(headers, query, key):
    assert compat.access_key_of(headers, query) == key


def test_an_s3_event_names_the_role_session_the_user_or_the_account_that_put_the_object():
    compat.stamp_uploader_identity(ACCOUNT)
    with mock_aws():
        region = "us-east-1"
        s3, sqs, iam = (boto3.client(n, region_name=region) for n in ("s3", "sqs", "iam"))
        url = sqs.create_queue(QueueName="events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.create_bucket(Bucket="uploads-bucket")
        s3.put_bucket_notification_configuration(Bucket="uploads-bucket", NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        role = iam.create_role(RoleName="gateway", AssumeRolePolicyDocument="{}")["Role"]
        sts = boto3.client("sts", region_name=region)
        c = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="gw-1")["Credentials"]
        as_role = boto3.client("s3", region_name=region, aws_access_key_id=c["AccessKeyId"],
                               aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
        user = iam.create_user(UserName="uploader")["User"]
        key = iam.create_access_key(UserName="uploader")["AccessKey"]
        as_user = boto3.client("s3", region_name=region, aws_access_key_id=key["AccessKeyId"],
                               aws_secret_access_key=key["SecretAccessKey"])

        as_role.put_object(Bucket="uploads-bucket", Key="by-role", Body=b"x")
        as_user.put_object(Bucket="uploads-bucket", Key="by-user", Body=b"x")
        s3.put_object(Bucket="uploads-bucket", Key="by-account", Body=b"x")

        found = {}
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for m in messages:
                for record in json.loads(m["Body"]).get("Records", []):
                    found[record["s3"]["object"]["key"]] = record["userIdentity"]["principalId"]
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert found == {"by-role": f"AWS:{role['RoleId']}:gw-1", "by-user": f"AWS:{user['UserId']}",
                     "by-account": ACCOUNT}
