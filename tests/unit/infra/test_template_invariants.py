"""Invariants of template.yaml that no linter knows: what must outlive the stack, how the queue,
the lease and the function timeout relate, TLS-only access, who may subscribe, who hears alarms.

Numbers are checked at the parameter defaults (what `sam deploy` uses unless told otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
SQS_MAX_RETENTION_S = 14 * 24 * 3600
WEEKEND_S = 72 * 3600           # Friday evening to Monday morning, with the morning to notice


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml     # understands !Ref, !Sub, !GetAtt

    return json.loads(json.dumps(cfn_yaml.load(str(ROOT / "template.yaml"))))


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _value(template: dict[str, Any], v: Any) -> Any:
    """A literal, or the default of the parameter it references."""
    if isinstance(v, dict) and set(v) == {"Ref"} and v["Ref"] in template["Parameters"]:
        return template["Parameters"][v["Ref"]]["Default"]
    return v


def _number(template: dict[str, Any], v: Any) -> int:
    return int(_value(template, v))


def _arn_of(name: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [name, "Arn"]}


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _tls_only(statement: dict[str, Any], service: str) -> bool:
    return (statement["Effect"] == "Deny" and statement.get("Principal") == "*"
            and set(_as_list(statement["Action"])) & {f"{service}:*", "*"} != set()
            and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}})


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_the_key_buckets_and_table_outlive_the_stack(template):
    kept = {**_of_type(template, "AWS::KMS::Key"), **_of_type(template, "AWS::S3::Bucket"),
            **_of_type(template, "AWS::DynamoDB::Table")}
    assert "DataKey" in kept and "ResultsTable" in kept and len(kept) >= 5
    loose = [n for n, r in kept.items()
             if r.get("DeletionPolicy") != "Retain" or r.get("UpdateReplacePolicy") != "Retain"]
    assert not loose, f"deleting the stack would delete (or leave undecryptable) {loose}"


def test_the_lease_is_the_function_timeout_and_the_visibility_timeout_at_least_six_of_them(template):
    function = template["Resources"]["AssessFunction"]["Properties"]
    timeout = function["Timeout"]
    assert function["Environment"]["Variables"]["LEASE_SECONDS"] == timeout     # the same expression
    visibility = template["Resources"]["AssessQueue"]["Properties"]["VisibilityTimeout"]
    assert _number(template, visibility) >= 6 * _number(template, timeout)


def test_a_dead_lettered_event_outlives_its_time_in_the_queue(template):
    # SQS ages a dead-lettered message from its first enqueue: the dead-letter queue must keep longer.
    queues = template["Resources"]
    main = queues["AssessQueue"]["Properties"]
    dlq_name = main["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    queue_s = _number(template, main["MessageRetentionPeriod"])
    dlq_s = _number(template, queues[dlq_name]["Properties"]["MessageRetentionPeriod"])
    assert WEEKEND_S <= queue_s < dlq_s <= SQS_MAX_RETENTION_S
    assert dlq_s - queue_s >= 7 * 24 * 3600         # a week, at least, to fix the cause and redrive


def test_every_bucket_refuses_plain_http(template):
    policies = _of_type(template, "AWS::S3::BucketPolicy").values()
    for name in _of_type(template, "AWS::S3::Bucket"):
        covered = [s for p in policies if p["Properties"]["Bucket"] == {"Ref": name} for s in _statements(p)
                   if _tls_only(s, "s3")
                   and {json.dumps(r, sort_keys=True) for r in _as_list(s["Resource"])}
                   >= {json.dumps(_arn_of(name)), json.dumps({"Fn::Sub": f"${{{name}.Arn}}/*"})}]
        assert covered, f"{name} has no TLS-only deny on the bucket and its objects"


def test_every_queue_refuses_plain_http(template):
    policies = _of_type(template, "AWS::SQS::QueuePolicy").values()
    queues = _of_type(template, "AWS::SQS::Queue")
    assert {"AssessQueue", "AssessDeadLetterQueue"} <= set(queues)
    for name in queues:
        covered = [s for p in policies if {"Ref": name} in p["Properties"]["Queues"] for s in _statements(p)
                   if _tls_only(s, "sqs") and _arn_of(name) in _as_list(s["Resource"])]
        assert covered, f"{name} has no TLS-only deny"


def test_results_go_only_to_encrypted_transports_and_email(template):
    statements = [s for p in _of_type(template, "AWS::SNS::TopicPolicy").values()
                  if {"Ref": "ResultsTopic"} in p["Properties"]["Topics"] for s in _statements(p)]
    assert any(_tls_only(s, "sns") or (s["Effect"] == "Deny" and s["Action"] == "sns:Publish"
                                       and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}})
               for s in statements)
    # (The other Subscribe deny, through CloudFormation only, is tests/unit/infra/test_onboarding.py's.)
    denies = [s for s in statements if s["Effect"] == "Deny" and "sns:Subscribe" in _as_list(s["Action"])
              and "sns:Protocol" in s.get("Condition", {}).get("StringNotEquals", {})]
    assert len(denies) == 1, "the results topic lets any protocol subscribe"
    [subscribe] = denies
    assert subscribe["Principal"] == "*" and subscribe["Resource"] == {"Ref": "ResultsTopic"}
    allowed = set(_as_list(subscribe["Condition"]["StringNotEquals"]["sns:Protocol"]))
    # e-mail carries only "a result is ready"; email-json and http would carry the full result in clear.
    assert allowed == {"https", "sqs", "lambda", "email"}


def test_every_alarm_reaches_a_subscriber_that_exists_without_configuration(template):
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    assert alarms and all(a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms.values())
    subscriptions = [s for s in _of_type(template, "AWS::SNS::Subscription").values()
                     if s["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}]
    always = [s for s in subscriptions if "Condition" not in s]
    assert always, "the alarm topic has no unconditional subscriber: SNS drops what nobody takes"
    assert any(s["Properties"]["Protocol"] == "email" and s.get("Condition") for s in subscriptions)
    # SNS may deliver to an SSE-KMS queue only if the key lets it encrypt.
    key_statements = template["Resources"]["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    for s in always:
        if s["Properties"]["Protocol"] == "sqs":
            queue = s["Properties"]["Endpoint"]["Fn::GetAtt"][0]
            assert template["Resources"][queue]["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}
            assert any(st["Principal"] == {"Service": "sns.amazonaws.com"}
                       and {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(st["Action"]) for st in key_statements)


def test_the_function_may_list_the_input_bucket_so_a_deleted_upload_is_404_not_403(template):
    [policy] = template["Resources"]["AssessFunction"]["Properties"]["Policies"]
    bucket_arn = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${AWS::StackName}-incoming-${AWS::AccountId}-${AWS::Region}"}
    listing = [s for s in policy["Statement"] if s["Effect"] == "Allow" and "s3:ListBucket" in _as_list(s["Action"])
               and s["Resource"] == bucket_arn]
    # A condition on s3:prefix would not count: S3 decides 403/404 for a GET, which carries no prefix.
    assert listing and all("Condition" not in s for s in listing)


def test_the_dead_letter_queue_has_a_consumer_that_parks_its_events_for_the_redrive(template):
    # A killed last delivery leaves no Python to record `failed`: something must consume the dead letters.
    resources = template["Resources"]
    dlq = resources["AssessQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    consumers = [m["Properties"] for m in _of_type(template, "AWS::Lambda::EventSourceMapping").values()
                 if m["Properties"]["EventSourceArn"] == _arn_of(dlq)]
    assert consumers, "nothing consumes the dead-letter queue: a killed last delivery stays `processing`"
    [mapping] = consumers
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]     # an unsettled event stays
    function = resources[mapping["FunctionName"]["Ref"]]["Properties"]
    assert _number(template, resources[dlq]["Properties"]["VisibilityTimeout"]) >= 6 * _number(template, function["Timeout"])
    # It deletes what it settles, so it must park each event where the redrive reads it, kept longer.
    parked = function["Environment"]["Variables"]["REDRIVE_QUEUE_URL"]["Ref"]
    [policy] = function["Policies"]
    assert any(s["Action"] == "sqs:SendMessage" and s["Resource"] == _arn_of(parked) for s in policy["Statement"])
    assert _number(template, resources[parked]["Properties"]["MessageRetentionPeriod"]) == SQS_MAX_RETENTION_S


def test_records_left_processing_raise_an_alarm_from_a_scheduled_sweep(template):
    resources = template["Resources"]
    alarms = [a["Properties"] for a in _of_type(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"]["MetricName"] == "StuckUploads"]
    assert alarms, "no alarm on records left processing past their lease"
    [alarm] = alarms
    assert alarm["Namespace"] == "BoneAge" and alarm["Dimensions"] == [{"Name": "service", "Value": "boneage"}]
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "breaching"          # a sweep that stopped running is noticed
    sweepers = [r["Properties"] for r in _of_type(template, "AWS::Serverless::Function").values()
                if any(e["Type"] == "Schedule" for e in r["Properties"].get("Events", {}).values())]
    assert len(sweepers) == 1
    [sweeper] = sweepers
    [schedule] = [e["Properties"]["Schedule"] for e in sweeper["Events"].values() if e["Type"] == "Schedule"]
    assert schedule == "rate(5 minutes)" and _number(template, alarm["Period"]) >= 2 * 300
    # The sweep finds stuck records through the sparse index, not a scan, and may do nothing else with it.
    [index] = [i for i in resources["ResultsTable"]["Properties"]["GlobalSecondaryIndexes"] if i["IndexName"] == "by_lease"]
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["status", "lease_until"]
    statements = sweeper["Policies"][0]["Statement"]
    assert not [s for s in statements if "dynamodb:Scan" in _as_list(s["Action"])]
    assert any(s["Action"] == "dynamodb:Query" and s["Resource"] == {"Fn::Sub": "${ResultsTable.Arn}/index/by_lease"}
               for s in statements)
    # Grace: a live event is redelivered within one visibility timeout of its lease ending.
    grace = sweeper["Environment"]["Variables"]["STUCK_AFTER_S"]
    assert grace == resources["AssessQueue"]["Properties"]["VisibilityTimeout"]


def test_the_worklist_client_is_a_public_code_grant_client_and_the_function_says_where_to_sign_in(template):
    # RFC 9700: no implicit grant for a browser client; the page runs the code grant with PKCE itself,
    # so the client has no secret (a page cannot keep one) and allows the code flow only.
    client = template["Resources"]["WorklistClient"]["Properties"]
    assert client["AllowedOAuthFlows"] == ["code"] and client["GenerateSecret"] is False
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert client["CallbackURLs"] == [{"Ref": "WorklistUrl"}]
    env = next(r["Properties"]["Environment"]["Variables"] for r in template["Resources"].values()
               if r["Type"] == "AWS::Serverless::Function"
               and r["Properties"].get("CodeUri", "").rstrip("/") == "functions/results")
    assert env["WORKLIST_CLIENT_ID"] == {"Ref": "WorklistClient"}
    assert env["WORKLIST_REDIRECT_URI"] == {"Ref": "WorklistUrl"}      # one of the client's callback URLs
    assert env["WORKLIST_AUTH_DOMAIN"]["Fn::Sub"].startswith("https://${ClinicianUserPoolDomain}.auth.")
    assert "WORKLIST_SIGN_IN_URL" not in env
