"""dynalite (the npm package) on a free loopback port, with the results table of ``template.yaml`` in it.

moto checks a write's condition and then writes, with nothing holding the item in between, so two
concurrent conditional writes can both succeed there. dynalite locks the item across the check and
the write, as DynamoDB does; the store's concurrency tests run against it
(``test_store_atomicity.py``). ``make dynalite`` installs it into ``build/node`` (``make test``
does that first); without it the tests fail and say so, they do not skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "build" / "node" / "node_modules" / "dynalite" / "cli.js"
REGION = "us-east-1"
TABLE_PROPERTIES = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


class DynaliteMissing(RuntimeError):
    """node or the dynalite package is not installed."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def missing() -> str | None:
    """Why dynalite cannot be started here, or None when it can."""
    if shutil.which("node") is None:
        why = "no node on PATH"
    elif not CLI.exists():
        why = f"no {CLI.relative_to(ROOT)}"
    else:
        return None
    return (f"dynalite is not installed ({why}): run `make dynalite` (`make test` does); the store's concurrency "
            "tests need a DynamoDB that applies conditions atomically and do not skip without one")


@contextmanager
def running(*, timeout_s: float = 20.0) -> Iterator[str]:
    """dynalite in memory on 127.0.0.1, stopped on exit; yields its endpoint URL."""
    if why := missing():
        raise DynaliteMissing(why)
    node = shutil.which("node")
    assert node is not None
    port = _free_port()
    with tempfile.TemporaryFile("w+") as log:
        # Tables are ACTIVE at once (the default keeps them CREATING for 500 ms); no --path: in memory.
        proc = subprocess.Popen([node, str(CLI), "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + timeout_s
            while not _answers(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"dynalite did not start on port {port} (exit {proc.poll()}): "
                                       f"{log.read()[-2000:]}")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_SESSION = boto3.session.Session()     # one loader, so each further client is cheap to make


def client(endpoint: str) -> Any:
    """A DynamoDB client of its own (connections included) on dynalite: dummy credentials keep boto3 away
    from any real profile; no retries, so a throttled or refused call is seen, not hidden. Make clients
    from one thread at a time (a boto3 session is not thread-safe); use each from any."""
    return _SESSION.client(
        "dynamodb", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(retries={"mode": "standard", "max_attempts": 1}))


def create_table(db: Any, name: str, template: dict[str, Any], resource: str = "ResultsTable") -> None:
    """The table as ``template.yaml`` declares it: the same keys and indexes, read from the template."""
    properties = template["Resources"][resource]["Properties"]
    db.create_table(TableName=name, **{k: properties[k] for k in TABLE_PROPERTIES if k in properties})
    db.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
