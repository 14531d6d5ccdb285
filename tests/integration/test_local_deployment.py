"""``boneage local`` as a newcomer uses it: started as a process, driven with the real AWS CLI only.

The CLI is the ``aws`` script of the ``dev`` extra's ``awscli`` (it vendors its own botocore, so it does
not disturb the service's boto3), looked up next to this interpreter first, then on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from boneage.devstack.hosted_ui import sign_in
from boneage.devstack.samples import sample_uploads

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSPITAL = "it-local"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _aws_cli() -> str:
    beside = Path(sys.executable).with_name("aws")
    found = str(beside) if beside.exists() else shutil.which("aws")
    assert found, "the AWS CLI is part of the dev extra (pip install -e '.[dev]')"
    return found


def _read_json_line(proc: subprocess.Popen, deadline: float, log: Path) -> dict[str, Any]:
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"boneage local exited early with {proc.wait()}: {log.read_text()[-2000:]}")
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError("boneage local printed nothing in time")


def test_an_upload_with_the_aws_cli_yields_a_record_and_a_notification_and_ctrl_c_exits_0(tmp_path):
    port = _free_port()
    log = tmp_path / "stderr.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "boneage.cli", "local", "--json", "--port", str(port), "--workers", "1",
         "--hospital", HOSPITAL, "--stack-name", "boneage-it-local", "--worklist-port", "0"],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env)
    try:
        ready = _read_json_line(proc, time.monotonic() + 300, log)
        assert ready["event"] == "ready" and ready["endpoint"] == f"http://127.0.0.1:{port}"
        assert ready["services"]["function"]["batch_size"] >= 1 and HOSPITAL in ready["inboxes"]
        assert any(" s3 cp " in c for c in ready["commands"])

        cli_env = {**env, **ready["credentials"], "AWS_DEFAULT_REGION": ready["region"]}
        # The upload is signed as the hospital's gateway role, as the printed s3 cp line does; the
        # operator's (the emulator's default) credentials would be refused by the function's uploader check.
        hospital_env = {**cli_env, **ready["hospitals"][HOSPITAL]["credentials"]}
        assert any(ready["hospitals"][HOSPITAL]["credentials"]["AWS_ACCESS_KEY_ID"] in c and " s3 cp " in c
                   for c in ready["commands"])

        def aws(*argv: str, as_hospital: bool = False) -> Any:
            out = subprocess.run([_aws_cli(), "--endpoint-url", ready["endpoint"], "--output", "json", *argv],
                                 capture_output=True, text=True, env=hospital_env if as_hospital else cli_env,
                                 timeout=60)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout) if out.stdout.startswith("{") else out.stdout     # s3 cp prints text

        boy = next(u for u in sample_uploads(3) if u.filename.endswith(".png") and u.expect == "completed")
        image = tmp_path / "hand.png"
        image.write_bytes(boy.body)
        aws("s3", "cp", str(image), f"s3://{ready['bucket']}/incoming/{HOSPITAL}/hand.png",
            "--metadata", "sex=M,age-months=126,study-ref=REF-CLI", as_hospital=True)

        deadline = time.monotonic() + 240
        records: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not records:
            items = aws("dynamodb", "scan", "--table-name", ready["table"])["Items"]
            records = [i for i in items if i["hospital_id"]["S"] == HOSPITAL
                       and i["status"]["S"] in ("completed", "rejected", "failed")]
            time.sleep(1)
        assert len(records) == 1, "no terminal record appeared"
        record = records[0]
        assert record["status"]["S"] == "completed" and record["study_reference"]["S"] == "REF-CLI"

        notes: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not notes:
            got = aws("sqs", "receive-message", "--queue-url", ready["inboxes"][HOSPITAL], "--wait-time-seconds", "2",
                      "--message-attribute-names", "All")
            notes = (got or {}).get("Messages", [])
        assert len(notes) == 1, "no notification arrived in the hospital's queue"
        envelope = json.loads(notes[0]["Body"])
        assert envelope["MessageAttributes"]["upload_id"]["Value"] == record["upload_id"]["S"]
        assert envelope["MessageAttributes"]["hospital_id"]["Value"] == HOSPITAL

        # The worklist's API serves the same record to the hospital's clinicians (token from the local
        # sign-in, the code grant with PKCE as the page runs it).
        assert HOSPITAL in ready["services"]["worklist"]["sign_in_hospitals"]
        token = sign_in(ready["services"]["worklist"]["url"], HOSPITAL)
        listing = urllib.request.Request(ready["services"]["worklist"]["url"] + "results",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(listing, timeout=30) as response:
            listed = json.loads(response.read())
        assert record["upload_id"]["S"] in json.dumps(listed)

        # The command reported the same upload on its stdout.
        line = _read_json_line(proc, time.monotonic() + 30, log)
        assert (line["event"], line["upload_id"], line["status"]) == ("upload", record["upload_id"]["S"], "completed")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    rest = proc.stdout.read()
    assert code == 0
    assert json.loads(rest.strip().splitlines()[-1]) == {"event": "stopped"}
