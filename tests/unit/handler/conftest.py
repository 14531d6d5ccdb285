"""An in-process AWS (moto ``mock_aws``, no sockets) shaped like the template: versioned input bucket,
results bucket, results table with its GSI, topic with one subscribed queue per hospital."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import torch
from moto import mock_aws

from boneage.adapters.runtime import Clients, build_processor
from boneage.config import Settings
from boneage.service import AssessmentService

from .support import FakeAssessor, FaultInjector

torch.set_num_threads(1)
HOSPITALS = ("st-mary", "north-gen")


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true",
                 "POWERTOOLS_METRICS_NAMESPACE": "BoneAge", "POWERTOOLS_SERVICE_NAME": "boneage"}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)


@dataclass
class Aws:
    settings: Settings
    clients: Clients
    input_bucket: str
    inboxes: dict[str, str]

    def put(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        return self.clients.s3.put_object(Bucket=self.input_bucket, Key=key, Body=body, Metadata=metadata or {})

    def notifications(self, hospital: str) -> list[dict[str, Any]]:
        out = []
        while True:
            msgs = self.clients.sqs.receive_message(QueueUrl=self.inboxes[hospital], MaxNumberOfMessages=10)
            if not msgs.get("Messages"):
                return out
            for m in msgs["Messages"]:
                out.append(json.loads(m["Body"]))
                self.clients.sqs.delete_message(QueueUrl=self.inboxes[hospital], ReceiptHandle=m["ReceiptHandle"])

    def items(self) -> list[dict[str, Any]]:
        from boneage.adapters.store import _unmarshal

        return [_unmarshal(i) for i in self.clients.dynamodb.scan(TableName=self.settings.results_table)["Items"]]

    def processor(self, service: Any = None, *, clock: Any = None, **kw: Any) -> Any:
        service = service or AssessmentService(FakeAssessor())
        extra = {"clock": clock} if clock else {}
        return build_processor(self.settings, service, clients=self.clients, **extra)


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        s3 = session.client("s3")
        ddb = session.client("dynamodb")
        sns = session.client("sns")
        sqs = session.client("sqs")
        input_bucket, results_bucket = "in-bucket", "results-bucket"
        for b in (input_bucket, results_bucket):
            s3.create_bucket(Bucket=b)
            s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        ddb.create_table(
            TableName="results", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[*({"AttributeName": n, "AttributeType": "S"}
                                    for n in ("upload_id", "hospital_id", "created_at", "status")),
                                  {"AttributeName": "lease_until", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "upload_id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[{"IndexName": "by_hospital", "Projection": {"ProjectionType": "ALL"},
                                     "KeySchema": [{"AttributeName": "hospital_id", "KeyType": "HASH"},
                                                   {"AttributeName": "created_at", "KeyType": "RANGE"}]},
                                    {"IndexName": "by_lease", "Projection": {
                                        "ProjectionType": "INCLUDE", "NonKeyAttributes": [
                                            "hospital_id", "source_bucket", "source_key", "source_version"]},
                                     "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                                                   {"AttributeName": "lease_until", "KeyType": "RANGE"}]}],
        )
        topic = sns.create_topic(Name="results")["TopicArn"]
        inboxes = {}
        for h in (*HOSPITALS, "_unknown"):
            url = sqs.create_queue(QueueName=f"inbox-{h}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                          Attributes={"FilterPolicy": json.dumps({"hospital_id": [h]})})
            inboxes[h] = url
        settings = Settings(results_table="results", results_bucket=results_bucket, topic_arn=topic,
                            max_receive_count=3, lease_seconds=60)
        yield Aws(settings, Clients(s3=s3, dynamodb=ddb, sns=sns, sqs=sqs), input_bucket, inboxes)


@pytest.fixture
def faults(aws: Aws) -> FaultInjector:
    return FaultInjector().attach([aws.clients.s3, aws.clients.dynamodb, aws.clients.sns])
