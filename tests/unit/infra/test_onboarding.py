"""Invariants of hospital onboarding: the main template lets no one subscribe to results except through
CloudFormation and always runs the uploader check; the per-hospital template is literal, confines the
role to the hospital's own resources and always filters what it subscribes.

Whether the policies *work* (a hospital's role really is denied another's folder, report and queue) is
shown with IAM enforced on the emulator (``tests/integration/test_hospital_isolation.py``); these pin the
shape that the README promises and that a careless edit could lose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from boneage.onboarding import HospitalNames, MainStack, RolesAnywhere, credential_process_config, render

ROOT = Path(__file__).resolve().parents[3]
MAIN = MainStack(stack_name="boneage", account="111122223333", region="eu-west-1",
                 input_bucket="boneage-incoming-111122223333-eu-west-1",
                 results_bucket="boneage-results-111122223333-eu-west-1",
                 data_key_arn="arn:aws:kms:eu-west-1:111122223333:key/abcd",
                 topic_arn="arn:aws:sns:eu-west-1:111122223333:t",
                 registry_prefix="/boneage/hospitals/")
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def main_template() -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(ROOT / "template.yaml"))))


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return resource["Properties"]["PolicyDocument"]["Statement"]


def _actions(statement: dict[str, Any]) -> set[str]:
    a = statement.get("Action", [])
    return set(a if isinstance(a, list) else [a])


def _walk(value: Any) -> list[Any]:
    out = [value]
    if isinstance(value, dict):
        for v in value.values():
            out += _walk(v)
    elif isinstance(value, list):
        for v in value:
            out += _walk(v)
    return out


# -- the main template -------------------------------------------------------------------------------

def test_only_cloudformation_may_subscribe_to_the_results_topic(main_template):
    policy = main_template["Resources"]["ResultsTopicPolicy"]
    [deny] = [s for s in _statements(policy) if s.get("Sid") == "SubscriptionsOnlyThroughTheOnboardingStack"]
    assert (deny["Effect"], deny["Principal"], _actions(deny)) == ("Deny", "*", {"sns:Subscribe"})
    assert deny["Resource"] == {"Ref": "ResultsTopic"}
    # StringNotEquals matches when the key is absent: a direct call (no aws:CalledViaFirst) is refused too.
    assert deny["Condition"] == {"StringNotEquals": {"aws:CalledViaFirst": "cloudformation.amazonaws.com"}}
    # And no statement anywhere in the template allows subscribing, nor subscribes to the results topic.
    for name, resource in main_template["Resources"].items():
        for statement in resource.get("Properties", {}).get("PolicyDocument", {}).get("Statement", []):
            if statement["Effect"] == "Allow":
                assert not _actions(statement) & {"sns:Subscribe", "sns:*", "*"}, name
        if resource["Type"] == "AWS::SNS::Subscription":
            assert resource["Properties"]["TopicArn"] != {"Ref": "ResultsTopic"}, name


def test_the_function_always_checks_the_uploader_and_reads_only_the_registry(main_template):
    function = main_template["Resources"]["AssessFunction"]["Properties"]
    registry = function["Environment"]["Variables"]["UPLOADER_REGISTRY"]
    assert registry == {"Fn::Sub": "/${AWS::StackName}/hospitals/"}
    assert main_template["Outputs"]["UploaderRegistryPrefix"]["Value"] == registry
    statements = [s for p in function["Policies"] for s in p["Statement"]]
    ssm = [s for s in statements if any(a.startswith("ssm:") for a in _actions(s))]
    assert len(ssm) == 1 and _actions(ssm[0]) == {"ssm:GetParameter"}
    assert ssm[0]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
                                            "/${AWS::StackName}/hospitals/*"}
    alarm = main_template["Resources"]["UploaderMismatchAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("BoneAge", "UploaderMismatch")
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_finalizer_does_not_run_the_check(main_template):
    # It never assesses, so it needs no registry (and gets no read of it).
    finalizer = main_template["Resources"]["FinalizeFunction"]["Properties"]
    assert "UPLOADER_REGISTRY" not in finalizer["Environment"]["Variables"]


# -- the per-hospital template -----------------------------------------------------------------------

def test_the_role_may_only_put_its_uploads_read_its_reports_use_the_key_and_consume_its_queue():
    template = render("st-mary", MAIN)
    role = template["Resources"]["HospitalRole"]["Properties"]
    [policy] = role["Policies"]
    allowed = {(frozenset(_actions(s)), s["Resource"]) for s in policy["PolicyDocument"]["Statement"]}
    queue = "arn:aws:sqs:eu-west-1:111122223333:boneage-st-mary-results"
    assert allowed == {
        (frozenset({"s3:PutObject"}), f"arn:aws:s3:::{MAIN.input_bucket}/incoming/st-mary/*"),
        (frozenset({"s3:GetObject"}), f"arn:aws:s3:::{MAIN.results_bucket}/reports/st-mary/*"),
        (frozenset({"kms:GenerateDataKey", "kms:Decrypt"}), MAIN.data_key_arn),
        (frozenset({"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes"}), queue),
    }
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert all(s["Effect"] == "Allow" for s in statements.values())
    # The data key only through S3 and SQS of the main stack's region, never called directly.
    kms = statements.pop("UseTheDataKeyForThoseObjectsAndTheQueue")
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": ["s3.eu-west-1.amazonaws.com",
                                                                    "sqs.eu-west-1.amazonaws.com"]}}
    assert all("Condition" not in s for s in statements.values())
    assert template["Resources"]["ResultsQueue"]["Properties"]["QueueName"] == queue.rsplit(":", 1)[1]


def test_every_policy_is_literal_no_policy_variables_no_intrinsics():
    template = render("st-mary", MAIN, emails=["radiology@st-mary.example"])
    role = template["Resources"]["HospitalRole"]["Properties"]
    for document in [role["Policies"][0]["PolicyDocument"],
                     template["Resources"]["ResultsQueuePolicy"]["Properties"]["PolicyDocument"]]:
        strings = [v for v in _walk(document) if isinstance(v, str)]
        assert not any("${" in v for v in strings), "an IAM policy variable or an unresolved Sub"
        assert not any(isinstance(v, dict) and any(k.startswith("Fn::") or k == "Ref" for k in v)
                       for v in _walk(document))


def test_every_subscription_filters_on_the_hospital_id_and_the_queue_gets_raw_messages():
    template = render("st-mary", MAIN, emails=["a@st-mary.example", "b@st-mary.example"])
    subscriptions = {n: r["Properties"] for n, r in template["Resources"].items()
                     if r["Type"] == "AWS::SNS::Subscription"}
    assert len(subscriptions) == 3
    for props in subscriptions.values():
        assert props["TopicArn"] == MAIN.topic_arn
        assert props["FilterPolicy"] == {"hospital_id": ["st-mary"]}
        assert props["FilterPolicyScope"] == "MessageAttributes"
    queue = subscriptions["ResultsSubscription"]
    assert (queue["Protocol"], queue["RawMessageDelivery"]) == ("sqs", True)
    assert {p["Protocol"] for n, p in subscriptions.items() if n != "ResultsSubscription"} == {"email"}


def test_the_results_queues_are_encrypted_with_the_data_key_and_only_the_topic_sends():
    resources = render("st-mary", MAIN)["Resources"]
    for name in ("ResultsQueue", "ResultsDeadLetterQueue"):
        assert resources[name]["Properties"]["KmsMasterKeyId"] == MAIN.data_key_arn
    assert resources["ResultsQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == \
        {"Fn::GetAtt": ["ResultsDeadLetterQueue", "Arn"]}
    allow, deny = _statements(resources["ResultsQueuePolicy"])
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": MAIN.topic_arn}}
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_the_registry_entry_is_the_roles_unique_id():
    parameter = render("st-mary", MAIN)["Resources"]["UploaderRegistration"]["Properties"]
    assert parameter["Name"] == "/boneage/hospitals/st-mary"
    assert parameter["Value"] == {"Fn::GetAtt": ["HospitalRole", "RoleId"]}


def test_roles_anywhere_trusts_only_the_hospitals_certificate_through_its_trust_anchor():
    template = render("st-mary", MAIN, roles_anywhere=RolesAnywhere(CA, "gateway.st-mary.example"))
    resources = template["Resources"]
    [trust] = resources["HospitalRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "rolesanywhere.amazonaws.com"}
    assert _actions(trust) == {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:PrincipalTag/x509Subject/CN": "gateway.st-mary.example"},
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["TrustAnchor", "TrustAnchorArn"]}}}
    assert resources["TrustAnchor"]["Properties"]["Source"]["SourceData"]["X509CertificateData"] == CA
    assert resources["Profile"]["Properties"]["RoleArns"] == [{"Fn::GetAtt": ["HospitalRole", "Arn"]}]
    assert resources["Profile"]["Properties"]["DurationSeconds"] == 3600
    profile = credential_process_config("st-mary", {"RoleArn": "arn:aws:iam::1:role/r", "TrustAnchorArn": "ta",
                                                    "ProfileArn": "pa"}, region="eu-west-1")
    assert "credential_process = aws_signing_helper credential-process" in profile
    assert "--trust-anchor-arn ta --profile-arn pa --role-arn arn:aws:iam::1:role/r" in profile


def test_without_roles_anywhere_the_role_trusts_one_principal_and_no_anchor_is_made():
    template = render("st-mary", MAIN)
    [trust] = template["Resources"]["HospitalRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert "TrustAnchor" not in template["Resources"] and "Profile" not in template["Resources"]
    other = render("st-mary", MAIN, trusted_principal="arn:aws:iam::111122223333:role/ecs-gateway")
    assert other["Resources"]["HospitalRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0][
        "Principal"] == {"AWS": "arn:aws:iam::111122223333:role/ecs-gateway"}


@pytest.mark.parametrize("hospital", ["bad id", "_unknown", "-x", "x" * 65, ""])
def test_a_malformed_hospital_id_is_refused(hospital):
    with pytest.raises(ValueError):
        render(hospital, MAIN)


def test_names_over_aws_limits_are_refused_before_deploying():
    with pytest.raises(ValueError, match="role name"):
        HospitalNames("h" * 60, MAIN)


@pytest.mark.parametrize("roles_anywhere", [None, RolesAnywhere(CA, "gw.example")])
def test_the_rendered_template_passes_cfn_lint(roles_anywhere):
    from cfnlint.api import ManualArgs, lint

    template = render("st-mary", MAIN, emails=["radiology@st-mary.example"], roles_anywhere=roles_anywhere)
    matches = lint(json.dumps(template), config=ManualArgs(regions=["eu-west-1"]))
    assert [str(m) for m in matches if m.rule.id.startswith("E")] == []


def test_the_data_key_condition_names_the_services_of_the_main_stacks_region_and_partition():
    from dataclasses import replace

    from boneage.onboarding.template import kms_via_services

    assert kms_via_services(MAIN) == ["s3.eu-west-1.amazonaws.com", "sqs.eu-west-1.amazonaws.com"]
    china = replace(MAIN, region="cn-north-1", partition="aws-cn")
    assert kms_via_services(china) == ["s3.cn-north-1.amazonaws.com.cn", "sqs.cn-north-1.amazonaws.com.cn"]
