"""``boneage onboard H``: give hospital ``H`` its gateway role, its results queue and its registry entry.

Reads the main stack's outputs (``--stack``), renders the per-hospital template (``boneage.onboarding``)
with literal ARNs, and deploys it as the stack ``<stack>-hospital-H`` with CloudFormation, waiting for it.
On AWS the gateway gets the role through IAM Roles Anywhere: give ``--roles-anywhere-ca`` (the PEM of
the CA that issues the hospital's gateway certificates) and ``--certificate-cn`` (the certificate's
subject CN the role trusts); the command prints the ``credential_process`` profile for the gateway host.
Without them the role trusts one principal of the account (``--trust-principal``, default the account).

``--endpoint-url`` points at the local emulator (``boneage local``): the same template is deployed there,
what the emulator's CloudFormation skips is applied (``boneage.devstack.hospitals``), and the command
prints a session of the role (credentials to use with the AWS CLI). ``--render`` prints the template
instead of deploying; ``--audit`` lists subscriptions of the results topic without a hospital filter
(exit status 1 when there is one). With ``--json`` one JSON object per line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HELP = "onboard a hospital: its gateway role, filtered results queue and uploader registry entry (one stack)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("hospital", help="hospital id (the folder under incoming/ and the hospital_id attribute)")
    p.add_argument("--stack", default="boneage", help="the main stack's name (default boneage)")
    p.add_argument("--region", default=None, help="AWS region (default: the SDK's)")
    p.add_argument("--endpoint-url", default=None,
                   help="the local emulator (boneage local), e.g. http://127.0.0.1:4566")
    p.add_argument("--email", action="append", default=[],
                   help="e-mail subscription, filtered to the hospital (repeatable)")
    p.add_argument("--roles-anywhere-ca", type=Path, default=None, metavar="PEM",
                   help="CA certificate (PEM) of the hospital's gateway certificates: IAM Roles Anywhere trust anchor")
    p.add_argument("--certificate-cn", default=None, help="subject CN of the gateway certificate the role trusts")
    p.add_argument("--trust-principal", default=None, metavar="ARN",
                   help="without Roles Anywhere: the principal that may assume the role (default: the account)")
    p.add_argument("--render", action="store_true", help="print the rendered template, deploy nothing")
    p.add_argument("--audit", action="store_true", help="list results-topic subscriptions without a hospital filter")
    p.add_argument("--json", action="store_true", help="one JSON object per line")


def _say(args: argparse.Namespace, event: dict[str, Any], text: str) -> None:
    print(json.dumps(event, default=str) if args.json else text, flush=True)


def run(args: argparse.Namespace) -> int:
    import boto3

    from boneage.onboarding import RolesAnywhere, credential_process_config, render
    from boneage.onboarding.deploy import deploy_hospital, main_stack, stack_outputs, unfiltered_subscriptions

    roles_anywhere = None
    if (args.roles_anywhere_ca is None) != (args.certificate_cn is None):
        print("error: --roles-anywhere-ca and --certificate-cn go together", file=sys.stderr)
        return 2
    if args.roles_anywhere_ca is not None:
        roles_anywhere = RolesAnywhere(args.roles_anywhere_ca.read_text(), args.certificate_cn)
    if args.endpoint_url:
        from boneage.devstack.stack import REGION, emulator_client

        def client(service: str) -> Any:
            return emulator_client(args.endpoint_url, service)
        region = REGION
    else:
        session = boto3.session.Session(region_name=args.region)
        region = session.region_name

        def client(service: str) -> Any:
            return session.client(service)

    cfn = client("cloudformation")
    try:
        main = main_stack(cfn, args.stack)
        if args.audit:
            found = unfiltered_subscriptions(client("sns"), main.topic_arn)
            _say(args, {"event": "audit", "topic": main.topic_arn, "unfiltered": found},
                 "\n".join([f"unfiltered: {f['protocol']} {f['endpoint']} ({f['subscription_arn']})" for f in found])
                 or f"every subscription of {main.topic_arn} filters on hospital_id")
            return 1 if found else 0
        if args.render:
            template = render(args.hospital, main, emails=args.email, roles_anywhere=roles_anywhere,
                              trusted_principal=args.trust_principal)
            _say(args, {"event": "template", "hospital_id": args.hospital, "template": template},
                 json.dumps(template, indent=2))
            return 0
        if args.endpoint_url:
            from boneage.devstack.hospitals import onboard
            from boneage.devstack.stack import LocalStack

            local = LocalStack(endpoint=args.endpoint_url, stack_name=args.stack,
                               outputs=stack_outputs(cfn, args.stack))
            access = onboard(local, args.hospital, emails=args.email)
            described = access.describe()
            _say(args, {"event": "onboarded", **described},
                 "\n".join([f"hospital {args.hospital} onboarded on {args.endpoint_url} (stack {access.stack_name})",
                            f"  role           {access.role_arn} ({access.role_id})",
                            f"  gateway queue  {access.results_queue_url}",
                            f"  uploads        s3://{access.input_bucket}/{access.upload_prefix}",
                            f"  reports        s3://{access.results_bucket}/{access.reports_prefix}",
                            "  a session of the role (the emulator's stand-in for Roles Anywhere):",
                            "  export " + " ".join(f"{k}={v}" for k, v in access.credentials.items())]))
            return 0
        outputs = deploy_hospital(cfn, args.stack, args.hospital, emails=args.email, roles_anywhere=roles_anywhere,
                                  trusted_principal=args.trust_principal)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    profile = credential_process_config(args.hospital, outputs, region=region or "") if roles_anywhere else None
    _say(args, {"event": "onboarded", "hospital_id": args.hospital, "outputs": outputs,
                "credential_process_profile": profile},
         "\n".join([f"hospital {args.hospital} onboarded: stack {args.stack}-hospital-{args.hospital}",
                    *(f"  {k:<26} {v}" for k, v in sorted(outputs.items())),
                    *(["", "On the gateway host, ~/.aws/config:", profile] if profile else [])]))
    return 0
