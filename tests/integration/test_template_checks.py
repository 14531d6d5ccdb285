"""Static checks of template.yaml: cfn-lint, `sam validate --lint`, checkov (all offline); checkov on a
rendered hospital stack (``boneage onboard``) too.

sam and checkov live in build/tools-venv (`make tools`; aws-sam-cli pins an older boto3 than .venv).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "build" / "tools-venv" / "bin"
OFFLINE_ENV = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "SAM_CLI_TELEMETRY": "0", "BC_SKIP_MAPPING": "TRUE"}


def _tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} missing: run `make tools` (make test does)")
    return path


def test_cfn_lint_passes():
    run = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "template.yaml"], cwd=ROOT, capture_output=True,
                         text=True, env=OFFLINE_ENV, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_sam_validate_lint_passes():
    run = subprocess.run([str(_tool("sam")), "validate", "--lint", "--template", "template.yaml"], cwd=ROOT,
                         capture_output=True, text=True, env=OFFLINE_ENV, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "is a valid SAM Template" in run.stdout + run.stderr


def test_checkov_finds_no_failed_check_and_every_skip_has_a_reason():
    run = subprocess.run([str(_tool("checkov")), "-f", "template.yaml", "--framework", "cloudformation",
                          "--compact"], cwd=ROOT, capture_output=True, text=True, env=OFFLINE_ENV, timeout=600)
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", run.stdout)
    assert summary, run.stdout[-2000:] + run.stderr[-2000:]
    passed, failed, skipped = map(int, summary.groups())
    assert failed == 0 and run.returncode == 0, run.stdout[-4000:]
    assert passed > 30
    template = (ROOT / "template.yaml").read_text()
    skips = re.findall(r"- id: (CKV_\w+)\n\s+comment: (.+)", template)
    assert len(skips) == skipped and all(len(reason.split()) >= 6 for _, reason in skips)


def test_checkov_finds_no_failed_check_in_a_rendered_hospital_stack(tmp_path):
    """The per-hospital template of ``boneage onboard`` (Roles Anywhere, an e-mail), as rendered."""
    import json

    from boneage.onboarding import MainStack, RolesAnywhere, render

    main = MainStack(stack_name="boneage", account="111122223333", region="eu-west-1",
                     input_bucket="boneage-incoming-111122223333-eu-west-1",
                     results_bucket="boneage-results-111122223333-eu-west-1",
                     data_key_arn="arn:aws:kms:eu-west-1:111122223333:key/abcd",
                     topic_arn="arn:aws:sns:eu-west-1:111122223333:results", registry_prefix="/boneage/hospitals/")
    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    path = tmp_path / "hospital.json"
    path.write_text(json.dumps(render("st-mary", main, emails=["radiology@st-mary.example"],
                                      roles_anywhere=RolesAnywhere(ca, "gateway.st-mary.example"))))
    run = subprocess.run([str(_tool("checkov")), "-f", str(path), "--framework", "cloudformation", "--compact"],
                         capture_output=True, text=True, env=OFFLINE_ENV, timeout=600)
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", run.stdout)
    assert summary, run.stdout[-2000:] + run.stderr[-2000:]
    passed, failed, _ = map(int, summary.groups())
    assert failed == 0 and run.returncode == 0 and passed >= 10, run.stdout[-4000:]
