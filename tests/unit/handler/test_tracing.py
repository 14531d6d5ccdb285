"""Traces carry no object keys: hospitals choose the keys, and a key may carry a patient's name.

X-Ray's boto3 patch records the ``Key`` of every S3 Get/Put, and Powertools records a traced method's
response as trace metadata. The function's tracer is built as Lambda builds it (the handler
module imported in a process that looks like Lambda, with the function's POWERTOOLS_* settings from
template.yaml), its segments are caught by an in-memory emitter, and none may contain the key. The
process is a child: patching is process-wide and must not reach the rest of the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
KEY = "incoming/st-mary/Doe-Jane-2015-03-12.dcm"

_CHILD = r"""
import json, sys
from pathlib import Path
from boneage.devstack import load_handler
app = load_handler(Path(sys.argv[1]))  # the function's Tracer, built at import as in Lambda
import boto3
from aws_xray_sdk.core import xray_recorder
from botocore.stub import Stubber

KEY = sys.argv[2]
sent = []

class Emitter:                          # in memory: no daemon, no socket
    def send_entity(self, entity):
        sent.append(entity.serialize())
    def set_daemon_address(self, address):
        pass

xray_recorder.configure(emitter=Emitter(), streaming_threshold=0)
s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")

@app.tracer.capture_method
def read_and_write():
    s3.get_object(Bucket="uploads", Key=KEY)
    s3.put_object(Bucket="uploads", Key=KEY, Body=b"")
    return {"key": KEY}

with Stubber(s3) as stub:
    stub.add_response("get_object", {"ContentLength": 0}, {"Bucket": "uploads", "Key": KEY})
    stub.add_response("put_object", {}, {"Bucket": "uploads", "Key": KEY, "Body": b""})
    read_and_write()
xray_recorder.stream_subsegments()
print(json.dumps(sent))
"""


def _function_tracer_settings() -> dict[str, str]:
    """The POWERTOOLS_* variables template.yaml gives the function (plain strings only)."""
    from cfnlint.decode import cfn_yaml

    template = cfn_yaml.load(str(ROOT / "template.yaml"))
    variables = template["Resources"]["AssessFunction"]["Properties"]["Environment"]["Variables"]
    return {k: str(v) for k, v in variables.items() if k.startswith("POWERTOOLS_") and isinstance(v, str)}


def test_traces_of_the_function_carry_no_object_key(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POWERTOOLS_", "AWS_LAMBDA_", "_X_AMZN"))}
    env.update(_function_tracer_settings())
    env.update({
        "LAMBDA_TASK_ROOT": str(tmp_path),      # what makes Powertools trace: "running in Lambda"
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), env.get("PYTHONPATH", "")]),
    })
    run = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT / "functions" / "assess" / "app.py"), KEY], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    entities = json.loads(run.stdout.strip().splitlines()[-1])
    names = [json.loads(e)["name"] for e in entities]
    assert "## __main__.read_and_write" in names, names        # tracing was on: the check is not vacuous
    leaks = [e for e in entities if "Doe-Jane" in e]
    assert not leaks, leaks
