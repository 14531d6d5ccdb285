"""The per-hospital CloudFormation template, rendered with literal names and ARNs.

Every policy names hospital ``H``'s own resources literally (``arn:aws:s3:::<bucket>/incoming/H/*``), not
through IAM policy variables or template parameters: what is deployed is what is read, and an emulator
that evaluates IAM (moto) evaluates the same document AWS does. One rendering per hospital, deployed once
per hospital as the stack ``<main stack>-hospital-H``.

What it creates for ``H``:

- ``HospitalRole``: the gateway's/uploader's role. Allowed only ``s3:PutObject`` under ``incoming/H/`` of
  the input bucket, ``s3:GetObject`` under ``reports/H/`` of the results bucket (PNG, DICOM SC and SR),
  ``kms:GenerateDataKey``/``kms:Decrypt`` on the data key only through S3 and SQS (``kms:ViaService``:
  SSE-KMS puts and gets, the encrypted queue) and
  receive/delete/change-visibility/get-attributes on its own results queue. Nothing else: IAM denies by
  default. Trusted by IAM Roles Anywhere for the hospital's certificate (``RolesAnywhere``) or, without one,
  by one principal of the account (the local emulator, or a gateway running inside AWS).
- ``ResultsQueue`` (SSE-KMS with the data key, 14 days' retention, its own dead-letter queue) subscribed
  to the results topic with ``FilterPolicy {"hospital_id": ["H"]}`` on the message attributes and raw
  delivery: a message's body is the ``boneage.assessment.v1`` JSON (``boneage.notification``), its SQS
  message attributes ``hospital_id``, ``status``, ``interpretation`` and ``upload_id``.
- optional e-mail subscriptions with the same filter (the e-mail says only that a result is ready).
- ``UploaderRegistration``: the SSM parameter ``<registry prefix>H`` holding the role's RoleId, which the
  assessment function reads to check who put an upload (``boneage.adapters.registry``).
- with Roles Anywhere: the trust anchor (the hospital's CA certificate) and the profile that hands out
  one-hour sessions of the role.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from boneage.config import HOSPITAL_ID_PATTERN

ROLES_ANYWHERE = "rolesanywhere.amazonaws.com"
SESSION_SECONDS = 3600
RESULTS_RETENTION_S = 14 * 24 * 3600        # a gateway offline for a long holiday still gets every result
RESULTS_MAX_RECEIVES = 10                   # deliveries to PACS that keep failing park in the hospital's DLQ
_LIMITS = {"role name": 64, "queue name": 80, "stack name": 128}


@dataclass(frozen=True)
class MainStack:
    """What a hospital's stack needs to know of the main stack (its outputs)."""

    stack_name: str
    account: str
    region: str
    input_bucket: str
    results_bucket: str
    data_key_arn: str
    topic_arn: str
    registry_prefix: str
    partition: str = "aws"
    input_prefix: str = "incoming/"
    reports_prefix: str = "reports/"

    @classmethod
    def from_outputs(cls, stack_name: str, outputs: Mapping[str, str]) -> MainStack:
        topic = outputs["ResultsTopicArn"]
        partition, region, account = topic.split(":")[1], topic.split(":")[3], topic.split(":")[4]
        return cls(stack_name=stack_name, account=account, region=region, partition=partition,
                   input_bucket=outputs["InputBucketName"], results_bucket=outputs["ResultsBucketName"],
                   data_key_arn=outputs["DataKeyArn"], topic_arn=topic,
                   registry_prefix=outputs["UploaderRegistryPrefix"])


@dataclass(frozen=True)
class RolesAnywhere:
    """How an on-premises gateway gets the role without long-lived keys: an X.509 certificate."""

    ca_certificate_pem: str         # the CA that issues the hospital's gateway certificates (trust anchor)
    subject_cn: str                 # the gateway certificate's subject CN the role trusts


@dataclass(frozen=True)
class HospitalNames:
    """The physical names of one hospital's resources, known before deployment (so policies are literal)."""

    hospital_id: str
    main: MainStack
    stack_name: str = field(init=False)
    role_name: str = field(init=False)
    queue_name: str = field(init=False)
    dead_letter_queue_name: str = field(init=False)

    def __post_init__(self) -> None:
        if not HOSPITAL_ID_PATTERN.match(self.hospital_id):
            raise ValueError(f"hospital id {self.hospital_id!r} does not match {HOSPITAL_ID_PATTERN.pattern}")
        names = {"stack_name": f"{self.main.stack_name}-hospital-{self.hospital_id}",
                 "role_name": f"{self.main.stack_name}-hospital-{self.hospital_id}",
                 "queue_name": f"{self.main.stack_name}-{self.hospital_id}-results",
                 "dead_letter_queue_name": f"{self.main.stack_name}-{self.hospital_id}-results-dlq"}
        for attr, value in names.items():
            object.__setattr__(self, attr, value)
        for what, value in (("role name", self.role_name), ("queue name", self.dead_letter_queue_name),
                            ("stack name", self.stack_name)):
            limit = _LIMITS[what]
            if len(value) > limit:
                raise ValueError(f"{what} {value!r} is over AWS's {limit} characters: use a shorter hospital id "
                                 "or main stack name")

    @property
    def arn_base(self) -> str:
        return f"arn:{self.main.partition}"

    @property
    def upload_prefix(self) -> str:
        return f"{self.main.input_prefix}{self.hospital_id}/"

    @property
    def reports_prefix(self) -> str:
        return f"{self.main.reports_prefix}{self.hospital_id}/"

    @property
    def queue_arn(self) -> str:
        return f"{self.arn_base}:sqs:{self.main.region}:{self.main.account}:{self.queue_name}"

    @property
    def role_arn(self) -> str:
        return f"{self.arn_base}:iam::{self.main.account}:role/{self.role_name}"

    @property
    def registry_parameter(self) -> str:
        return f"{self.main.registry_prefix}{self.hospital_id}"

    @property
    def filter_policy(self) -> dict[str, list[str]]:
        return {"hospital_id": [self.hospital_id]}


def kms_via_services(main: MainStack) -> list[str]:
    """The services through which the hospital role may use the data key: S3 (its uploads and reports)
    and SQS (its results queue) of the main stack's region, as ``kms:ViaService`` names them."""
    suffix = "amazonaws.com.cn" if main.partition == "aws-cn" else "amazonaws.com"
    return [f"s3.{main.region}.{suffix}", f"sqs.{main.region}.{suffix}"]


def role_policy(names: HospitalNames) -> dict[str, Any]:
    """The hospital role's only permissions, every resource literal. One Condition: the data key only
    through S3 and SQS (``kms:ViaService``, as AWS documents it), never called directly, so the role
    cannot decrypt or make data keys for anything but the objects and the queue it may already read.
    The rest needs none: the resources alone confine the role. The emulator cannot tell this
    condition apart: moto checks a KMS call against the resource "*" (not the key), so it refuses
    the role's direct KMS calls with or without it, and checks no KMS permission behind S3 and SQS;
    ``tests/unit/infra/test_onboarding.py`` pins the rendered statement instead."""
    m, arn = names.main, names.arn_base
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PutOwnUploads", "Effect": "Allow", "Action": "s3:PutObject",
             "Resource": f"{arn}:s3:::{m.input_bucket}/{names.upload_prefix}*"},
            {"Sid": "ReadOwnReports", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": f"{arn}:s3:::{m.results_bucket}/{names.reports_prefix}*"},
            {"Sid": "UseTheDataKeyForThoseObjectsAndTheQueue", "Effect": "Allow",
             "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": m.data_key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": kms_via_services(m)}}},
            {"Sid": "ConsumeOwnResults", "Effect": "Allow",
             "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes"],
             "Resource": names.queue_arn},
        ],
    }


def trust_policy(names: HospitalNames, roles_anywhere: RolesAnywhere | None,
                 trusted_principal: str | None) -> dict[str, Any]:
    if roles_anywhere is not None:
        statement = {
            "Sid": "HospitalGatewayCertificate", "Effect": "Allow", "Principal": {"Service": ROLES_ANYWHERE},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            "Condition": {
                "StringEquals": {"aws:PrincipalTag/x509Subject/CN": roles_anywhere.subject_cn},
                "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["TrustAnchor", "TrustAnchorArn"]}},
            },
        }
    else:
        principal = trusted_principal or f"{names.arn_base}:iam::{names.main.account}:root"
        statement = {"Sid": "OnePrincipalOfTheAccount", "Effect": "Allow", "Principal": {"AWS": principal},
                     "Action": "sts:AssumeRole"}
    return {"Version": "2012-10-17", "Statement": [statement]}


def render(hospital_id: str, main: MainStack, *, emails: Sequence[str] = (),
           roles_anywhere: RolesAnywhere | None = None, trusted_principal: str | None = None) -> dict[str, Any]:
    """The hospital's stack as a CloudFormation template (JSON-able)."""
    names = HospitalNames(hospital_id, main)
    if roles_anywhere is not None and trusted_principal is not None:
        raise ValueError("trust either the Roles Anywhere certificate or one principal, not both")
    h = hospital_id
    tags = [{"Key": "boneage:hospital_id", "Value": h}, {"Key": "boneage:stack", "Value": main.stack_name}]
    queue = {"KmsMasterKeyId": main.data_key_arn, "KmsDataKeyReusePeriodSeconds": 3600,
             "MessageRetentionPeriod": RESULTS_RETENTION_S}
    resources: dict[str, Any] = {
        "HospitalRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": names.role_name,
                "Description": f"Hospital {h}'s gateway: uploads under {names.upload_prefix}, its reports, its queue",
                "MaxSessionDuration": SESSION_SECONDS,
                "AssumeRolePolicyDocument": trust_policy(names, roles_anywhere, trusted_principal),
                "Policies": [{"PolicyName": f"hospital-{h}", "PolicyDocument": role_policy(names)}],
                "Tags": tags,
            },
        },
        "ResultsDeadLetterQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": names.dead_letter_queue_name, **queue, "Tags": tags},
        },
        "ResultsQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": names.queue_name, **queue, "VisibilityTimeout": 300,
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["ResultsDeadLetterQueue", "Arn"]},
                                  "maxReceiveCount": RESULTS_MAX_RECEIVES},
                "Tags": tags,
            },
        },
        "ResultsQueuePolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": "ResultsQueue"}],
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Sid": "ResultsTopicDelivers", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                     "Action": "sqs:SendMessage", "Resource": names.queue_arn,
                     "Condition": {"ArnEquals": {"aws:SourceArn": main.topic_arn}}},
                    {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "sqs:*",
                     "Resource": names.queue_arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
                ]},
            },
        },
        "ResultsSubscription": {
            "Type": "AWS::SNS::Subscription",
            "DependsOn": "ResultsQueuePolicy",
            "Properties": {"TopicArn": main.topic_arn, "Protocol": "sqs", "Endpoint": names.queue_arn,
                           "FilterPolicyScope": "MessageAttributes", "FilterPolicy": names.filter_policy,
                           "RawMessageDelivery": True},
        },
        "UploaderRegistration": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Name": names.registry_parameter, "Type": "String",
                           "Value": {"Fn::GetAtt": ["HospitalRole", "RoleId"]},
                           "Description": f"Principals (IAM unique ids) allowed to put under {names.upload_prefix}"},
        },
    }
    for i, address in enumerate(emails, start=1):
        resources[f"EmailSubscription{i}"] = {
            "Type": "AWS::SNS::Subscription",
            "Properties": {"TopicArn": main.topic_arn, "Protocol": "email", "Endpoint": address,
                           "FilterPolicyScope": "MessageAttributes", "FilterPolicy": names.filter_policy},
        }
    outputs: dict[str, Any] = {
        "HospitalId": {"Value": h},
        "RoleArn": {"Value": {"Fn::GetAtt": ["HospitalRole", "Arn"]}},
        "RoleId": {"Value": {"Fn::GetAtt": ["HospitalRole", "RoleId"]}},
        "ResultsQueueUrl": {"Value": {"Ref": "ResultsQueue"}},
        "ResultsQueueArn": {"Value": names.queue_arn},
        "ResultsDeadLetterQueueUrl": {"Value": {"Ref": "ResultsDeadLetterQueue"}},
        "UploadPrefix": {"Value": f"s3://{main.input_bucket}/{names.upload_prefix}"},
        "ReportsPrefix": {"Value": f"s3://{main.results_bucket}/{names.reports_prefix}"},
        "RegistryParameter": {"Value": names.registry_parameter},
    }
    if roles_anywhere is not None:
        resources["TrustAnchor"] = {
            "Type": "AWS::RolesAnywhere::TrustAnchor",
            "Properties": {"Name": names.stack_name, "Enabled": True, "Tags": tags,
                           "Source": {"SourceType": "CERTIFICATE_BUNDLE",
                                      "SourceData": {"X509CertificateData": roles_anywhere.ca_certificate_pem}}},
        }
        resources["Profile"] = {
            "Type": "AWS::RolesAnywhere::Profile",
            "Properties": {"Name": names.stack_name, "Enabled": True, "DurationSeconds": SESSION_SECONDS,
                           "RoleArns": [{"Fn::GetAtt": ["HospitalRole", "Arn"]}], "Tags": tags},
        }
        outputs["TrustAnchorArn"] = {"Value": {"Fn::GetAtt": ["TrustAnchor", "TrustAnchorArn"]}}
        outputs["ProfileArn"] = {"Value": {"Fn::GetAtt": ["Profile", "ProfileArn"]}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Bone age service: hospital {h} onboarded to {main.stack_name} (boneage onboard)",
        "Resources": resources,
        "Outputs": outputs,
    }


def credential_process_config(hospital_id: str, outputs: Mapping[str, str], *, region: str,
                              certificate: str = "/etc/boneage/gateway.pem",
                              private_key: str = "/etc/boneage/gateway.key") -> str:
    """The gateway host's ``~/.aws/config`` profile: the AWS SDKs and CLI run AWS's ``aws_signing_helper``
    (IAM Roles Anywhere's credential helper), which trades the certificate for a one-hour session."""
    command = (f"aws_signing_helper credential-process --certificate {certificate} --private-key {private_key} "
               f"--trust-anchor-arn {outputs.get('TrustAnchorArn', '<TrustAnchorArn>')} "
               f"--profile-arn {outputs.get('ProfileArn', '<ProfileArn>')} --role-arn {outputs['RoleArn']}")
    return f"[profile boneage-{hospital_id}]\nregion = {region}\ncredential_process = {command}\n"


def as_json(template: Mapping[str, Any]) -> str:
    return json.dumps(template, indent=2, sort_keys=False)
