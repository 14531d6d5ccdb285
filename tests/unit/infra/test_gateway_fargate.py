"""functions/gateway/fargate.yaml, the gateway on ECS Fargate for a hospital on VPN: lint-clean, its
spool durable and single-writer, and the configuration it writes for the container one the gateway loads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from boneage.gateway.config import GatewayConfig

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "functions" / "gateway" / "fargate.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))


def test_cfn_lint_passes():
    run = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_spool_is_encrypted_outlives_the_stack_and_has_one_writer(template):
    resources = template["Resources"]
    spool = resources["Spool"]
    assert spool["Properties"]["Encrypted"] is True and spool["DeletionPolicy"] == "Retain"
    (volume,) = resources["Task"]["Properties"]["Volumes"]
    assert volume["EFSVolumeConfiguration"]["TransitEncryption"] == "ENABLED"
    (container,) = resources["Task"]["Properties"]["ContainerDefinitions"]
    assert container["MountPoints"] == [{"SourceVolume": "spool", "ContainerPath": "/var/spool/boneage"}]
    deployment = resources["Service"]["Properties"]["DeploymentConfiguration"]
    assert deployment == {"MaximumPercent": 100, "MinimumHealthyPercent": 0}    # never two tasks on one spool


def test_the_container_configuration_loads_as_a_gateway_configuration(template):
    (container,) = template["Resources"]["Task"]["Properties"]["ContainerDefinitions"]
    (variable,) = container["Environment"]
    text = variable["Value"]["Fn::Sub"]
    values = {"HospitalId": "st-mary", "AeTitle": "BONEAGE", "ListenPort": "11112",
              "AllowedCallingAets": '["PACS", "CR1"]', "AWS::Region": "eu-west-1", "UploadBucket": "in",
              "ResultsBucket": "out", "ResultsQueueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q",
              "PacsHost": "10.1.2.3", "PacsPort": "104", "PacsAeTitle": "PACS"}
    names = set(re.findall(r"\$\{([^}]+)\}", text))
    assert names <= set(values) and names - {"AWS::Region"} <= set(template["Parameters"])
    config = GatewayConfig.from_dict(json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text)))
    assert config.spool_dir == Path("/var/spool/boneage") and config.allowed_calling_aets == ("PACS", "CR1")
    assert config.pacs is not None and config.pacs.port == 104
