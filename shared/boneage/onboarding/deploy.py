"""Deploy a hospital's rendered template with CloudFormation, and audit the results topic's subscriptions.

``deploy_hospital`` reads the main stack's outputs, renders ``template.render`` for the hospital and creates
(or updates) the stack ``<main>-hospital-<H>``, waiting for it; it returns the stack's outputs. The
topic policy of ``template.yaml`` refuses ``sns:Subscribe`` unless CloudFormation makes the call
(``aws:CalledViaFirst``), so this stack, which always sets the filter, is how a queue or an address
gets results. ``unfiltered_subscriptions`` lists any subscription of the topic without a
``hospital_id`` filter, for an operator's check that nothing got round it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from .template import HospitalNames, MainStack, RolesAnywhere, render

CAPABILITIES = ["CAPABILITY_NAMED_IAM"]


def stack_outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    described = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def main_stack(cfn: Any, stack_name: str) -> MainStack:
    """The main stack's outputs as the onboarding template needs them."""
    return MainStack.from_outputs(stack_name, stack_outputs(cfn, stack_name))


def deploy_template(cfn: Any, stack_name: str, template: Mapping[str, Any], *, tags: Mapping[str, str] = {},
                    wait_delay_s: int = 5) -> dict[str, str]:
    """Create the stack, or update it when it exists; waits and returns its outputs."""
    args = {"StackName": stack_name, "TemplateBody": json.dumps(template), "Capabilities": CAPABILITIES,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
    try:
        cfn.describe_stacks(StackName=stack_name)
        exists = True
    except ClientError as exc:
        if "does not exist" not in str(exc):
            raise
        exists = False
    try:
        if exists:
            try:
                cfn.update_stack(**args)
            except ClientError as exc:
                if "No updates are to be performed" not in str(exc):
                    raise
                return stack_outputs(cfn, stack_name)
            cfn.get_waiter("stack_update_complete").wait(StackName=stack_name, WaiterConfig={"Delay": wait_delay_s})
        else:
            cfn.create_stack(**args, OnFailure="DELETE")
            cfn.get_waiter("stack_create_complete").wait(StackName=stack_name, WaiterConfig={"Delay": wait_delay_s})
    except WaiterError as exc:
        events = cfn.describe_stack_events(StackName=stack_name).get("StackEvents", [])[:5]
        reasons = "; ".join(f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}" for e in events)
        raise RuntimeError(f"stack {stack_name} did not deploy: {reasons}") from exc
    return stack_outputs(cfn, stack_name)


def deploy_hospital(cfn: Any, main_stack_name: str, hospital_id: str, *, emails: Sequence[str] = (),
                    roles_anywhere: RolesAnywhere | None = None,
                    trusted_principal: str | None = None) -> dict[str, str]:
    main = main_stack(cfn, main_stack_name)
    names = HospitalNames(hospital_id, main)
    template = render(hospital_id, main, emails=emails, roles_anywhere=roles_anywhere,
                      trusted_principal=trusted_principal)
    return deploy_template(cfn, names.stack_name, template,
                           tags={"boneage:hospital_id": hospital_id, "boneage:stack": main_stack_name})


def unfiltered_subscriptions(sns: Any, topic_arn: str) -> list[dict[str, str]]:
    """Subscriptions of the topic that a hospital's filter does not confine (no ``hospital_id`` filter on
    the message attributes): they would hear every hospital's results."""
    found = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            arn = sub["SubscriptionArn"]
            if not arn.startswith("arn:"):          # PendingConfirmation: not delivering yet
                continue
            attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
            policy = json.loads(attributes.get("FilterPolicy") or "{}")
            scope = attributes.get("FilterPolicyScope", "MessageAttributes")
            values = policy.get("hospital_id") if isinstance(policy, dict) else None
            if scope != "MessageAttributes" or not isinstance(values, list) or not values \
                    or not all(isinstance(v, str) for v in values):
                found.append({"subscription_arn": arn, "protocol": sub.get("Protocol", ""),
                              "endpoint": sub.get("Endpoint", "")})
    return found
