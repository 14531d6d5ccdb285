"""Onboarding a hospital on the local emulator, and the access it then has (``HospitalAccess``).

``onboard(stack, H)`` deploys the very template ``boneage onboard`` deploys on AWS
(``boneage.onboarding.render``: the hospital's role, its results queue and dead-letter queue, its
uploader registry entry) into the emulator's CloudFormation, then applies the two resources moto's
CloudFormation skips: the queue policy and the topic subscription, with the template's own filter policy
and raw delivery. (On the emulator the operator subscribes directly; on AWS the topic policy lets only
CloudFormation subscribe.) It then assumes the hospital's role with STS, as a gateway would get a session
from IAM Roles Anywhere, and returns the session's credentials with the names a gateway needs.

Requests signed with those credentials are that role's: with IAM enforced (``/moto-api/reset-auth``)
moto evaluates the role's literal policy, and the S3 events of its uploads name the role's session
(``boneage.compat.moto``), which the function checks against the registry.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from boneage.onboarding.deploy import CAPABILITIES, stack_outputs
from boneage.onboarding.template import HospitalNames, MainStack, render

from .stack import HOSPITAL_STACK_SKIPPED, REGION, LocalStack, apply_skipped, resolver_for

SESSION_SECONDS = 3600
_lock = threading.Lock()


@dataclass(frozen=True)
class HospitalAccess:
    """What hospital ``hospital_id``'s gateway needs: its session credentials and where things are."""

    hospital_id: str
    endpoint: str
    region: str
    stack_name: str                     # the hospital's onboarding stack
    role_arn: str
    role_id: str                        # what the uploader registry holds
    results_queue_url: str              # raw delivery: body = boneage.assessment.v1 JSON, attributes as SQS's
    results_dead_letter_queue_url: str
    input_bucket: str
    results_bucket: str
    upload_prefix: str                  # incoming/<H>/ in input_bucket
    reports_prefix: str                 # reports/<H>/ in results_bucket (PNG, DICOM SC and SR)
    credentials: dict[str, str] = field(repr=False)     # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
    session_name: str = "gateway"

    @property
    def principal_id(self) -> str:
        """What an S3 event's ``userIdentity.principalId`` says for an object this session put."""
        return f"AWS:{self.role_id}:{self.session_name}"

    @property
    def env(self) -> dict[str, str]:
        """Environment variables for a process (the AWS CLI, a gateway) acting as the hospital."""
        return {**self.credentials, "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region,
                "AWS_ENDPOINT_URL": self.endpoint}

    def session(self) -> boto3.session.Session:
        return boto3.session.Session(region_name=self.region, aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
                                     aws_session_token=self.credentials["AWS_SESSION_TOKEN"])

    def client(self, service: str, **kwargs: Any) -> Any:
        """A client signed as the hospital's role, pointed at the emulator."""
        return self.session().client(service, endpoint_url=self.endpoint, **kwargs)

    def describe(self) -> dict[str, Any]:
        return {"hospital_id": self.hospital_id, "endpoint": self.endpoint, "region": self.region,
                "stack": self.stack_name, "role_arn": self.role_arn, "role_id": self.role_id,
                "results_queue_url": self.results_queue_url,
                "results_dead_letter_queue_url": self.results_dead_letter_queue_url,
                "input_bucket": self.input_bucket, "results_bucket": self.results_bucket,
                "upload_prefix": self.upload_prefix, "reports_prefix": self.reports_prefix,
                "credentials": dict(self.credentials)}


def main_stack_of(stack: LocalStack) -> MainStack:
    return MainStack.from_outputs(stack.stack_name, stack.outputs)


def onboard(stack: LocalStack, hospital_id: str, *, emails: Sequence[str] = ()) -> HospitalAccess:
    """Deploy hospital ``hospital_id``'s stack into the emulator (once; later calls reuse it) and assume its
    role. Returns the hospital's access with fresh session credentials."""
    main = main_stack_of(stack)
    names = HospitalNames(hospital_id, main)
    cfn = stack.client("cloudformation")
    with _lock:
        try:
            outputs = stack_outputs(cfn, names.stack_name)
        except ClientError:
            outputs = _deploy(stack, names, render(hospital_id, main, emails=emails))
    # The queues' URLs as the emulator's endpoint serves them (what the AWS CLI and a gateway can use).
    sqs = stack.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=names.queue_name)["QueueUrl"]
    dead_letter_url = sqs.get_queue_url(QueueName=names.dead_letter_queue_name)["QueueUrl"]
    session_name = f"{hospital_id}-gateway"[:64]
    credentials = stack.client("sts").assume_role(
        RoleArn=outputs["RoleArn"], RoleSessionName=session_name, DurationSeconds=SESSION_SECONDS)["Credentials"]
    return HospitalAccess(
        hospital_id=hospital_id, endpoint=stack.endpoint, region=REGION, stack_name=names.stack_name,
        role_arn=outputs["RoleArn"], role_id=outputs["RoleId"], results_queue_url=queue_url,
        results_dead_letter_queue_url=dead_letter_url, input_bucket=main.input_bucket,
        results_bucket=main.results_bucket, upload_prefix=names.upload_prefix, reports_prefix=names.reports_prefix,
        credentials={"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                     "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                     "AWS_SESSION_TOKEN": credentials["SessionToken"]},
        session_name=session_name)


def _deploy(stack: LocalStack, names: HospitalNames, template: dict[str, Any]) -> dict[str, str]:
    cfn = stack.client("cloudformation")
    # Moto warns once per resource type its CloudFormation skips; the two it skips are applied below.
    warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)
    cfn.create_stack(StackName=names.stack_name, TemplateBody=json.dumps(template), Capabilities=CAPABILITIES)
    cfn.get_waiter("stack_create_complete").wait(StackName=names.stack_name, WaiterConfig={"Delay": 1})
    physical = {s["LogicalResourceId"]: s.get("PhysicalResourceId", "")
                for s in cfn.list_stack_resources(StackName=names.stack_name)["StackResourceSummaries"]}
    outputs = stack_outputs(cfn, names.stack_name)
    # What moto's CloudFormation skips, applied from the template itself, as for the main stack.
    apply_skipped(template, resolver_for(template, physical, names.stack_name, stack.client), stack.client,
                  kinds=HOSPITAL_STACK_SKIPPED)
    ssm = stack.client("ssm")
    # The registry entry is the role's RoleId; written here if the emulator's CloudFormation left it out.
    try:
        ssm.get_parameter(Name=names.registry_parameter)
    except ssm.exceptions.ParameterNotFound:
        ssm.put_parameter(Name=names.registry_parameter, Type="String", Value=outputs["RoleId"])
    return outputs


__all__ = ["HospitalAccess", "main_stack_of", "onboard"]
