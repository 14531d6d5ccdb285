"""``boneage local`` (``make local``): the whole application on this machine until Ctrl-C.

Starts the AWS emulator on a fixed loopback port (``--port``, default 4566) with ``template.yaml``
deployed, the assessment function consuming its queue with ``--workers`` containers as the event source
mapping would (``boneage.devstack.poller``), each ``--hospital`` onboarded (``boneage onboard``'s stack: its
gateway role and results queue) with a clinicians' queue subscribed to the results topic with a filter on
``hospital_id``. It prints the endpoint, the operator's and each hospital's credentials (uploads must be
signed as the hospital's role: the function checks who put them), resource names and ready-to-paste AWS
CLI lines, then one line per notification the topic sends. SIGINT or
SIGTERM stops it cleanly (workers finish their batch first); the exit status is 0.

With ``--json`` stdout carries one JSON object per line: ``{"event": "ready", ...}`` first, then
``{"event": "upload", ...}`` per notification (upload id, hospital, status, reason), then
``{"event": "stopped"}``. The function's logs go to stderr. Needs a repository checkout with the
``dev`` extra (``boneage.devstack``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

HELP = "run the application locally (emulator + template.yaml + the function polling its queue) until Ctrl-C"


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Defaults are boneage.devstack.local's, resolved in run(): building the parser of every command must
    # not import the dev-only stack (or boto3).
    p.add_argument("--port", type=int, default=None, help="emulator port on 127.0.0.1 (default 4566)")
    p.add_argument("--workers", type=int, default=2, help="concurrent function containers (default 2)")
    p.add_argument("--hospital", action="append", default=None,
                   help="hospital with a clinicians' queue (repeatable; default st-mary, north-gen)")
    p.add_argument("--stack-name", default="boneage-local")
    p.add_argument("--retry-after", type=float, default=None, metavar="SECONDS",
                   help="make a failed message visible again after SECONDS instead of the queue's visibility timeout")
    p.add_argument("--worklist-port", type=int, default=8765,
                   help="port of the results API and clinicians' worklist on 127.0.0.1 (default 8765; 0 picks one)")
    p.add_argument("--verbose", action="store_true", help="the function's INFO logs and metrics, and each invocation")
    p.add_argument("--json", action="store_true", help="one JSON object per line")


def _say(args: argparse.Namespace, lock: threading.Lock, event: dict[str, Any], text: str) -> None:
    with lock:
        print(json.dumps(event, default=str) if args.json else text, flush=True)


def run(args: argparse.Namespace) -> int:
    from boneage.devstack.local import DEFAULT_HOSPITALS, DEFAULT_PORT, LocalDeployment, write_samples
    from boneage.devstack.results_api import WorklistService
    from boneage.devstack.stack import ROOT

    if args.port is None:
        args.port = DEFAULT_PORT

    lock = threading.Lock()
    stop = threading.Event()
    # From here on a signal asks for a clean stop; before the deployment is up it interrupts the start.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def on_notification(note: dict[str, Any]) -> None:
        fields = {k: v for k, v in note.items() if k != "received_at"}
        extra = f" ({note['reason']})" if note.get("reason") else ""
        age = f" bone age {note['bone_age_months']} months" if note.get("bone_age_months") is not None else ""
        _say(args, lock, {"event": "upload", **fields},
             f"notification: {note['hospital_id']} upload {note['upload_id']} {note['status']}{extra}{age}")

    def on_event(event: dict[str, Any]) -> None:
        if args.verbose or event.get("event") in ("timeout", "worker_died", "poll_error"):
            with lock:
                print(f"function: {json.dumps(event)}", file=sys.stderr, flush=True)

    print(f"starting the emulator on 127.0.0.1:{args.port}, deploying template.yaml, starting {args.workers} "
          "function worker(s) (each loads the model) ...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    try:
        deployment = LocalDeployment.start(
            port=args.port, stack_name=args.stack_name, workers=args.workers,
            hospitals=tuple(args.hospital or DEFAULT_HOSPITALS), retry_after_s=args.retry_after,
            quiet=not args.verbose, on_event=on_event, on_notification=on_notification,
            extra_services=[WorklistService(args.worklist_port)])
    except OSError as exc:
        print(f"error: could not start the emulator on port {args.port}: {exc.strerror or exc} "
              "(another `make local`? choose one with --port)", file=sys.stderr)
        return 2
    try:
        samples = write_samples(ROOT / "build" / "local" / "samples")
        sample = next((p for p in samples if p.suffix == ".png"), samples[0])
        commands = deployment.commands(sample)
        ready = {"event": "ready", "startup_s": round(time.monotonic() - t0, 1), **deployment.describe(),
                 "samples": [str(p) for p in samples], "commands": commands}
        if args.json:
            _say(args, lock, ready, "")
        else:
            d = deployment.describe()
            lines = [f"ready in {ready['startup_s']} s (Ctrl-C stops)", "",
                     f"  endpoint     {d['endpoint']}  (region {d['region']})",
                     f"  credentials  {' '.join(f'{k}={v}' for k, v in d['credentials'].items())}  (operator)",
                     f"  bucket       {d['bucket']}   (upload under incoming/<hospital>/)",
                     f"  table        {d['table']}", f"  topic        {d['topic']}",
                     f"  queue        {d['queue']}", f"  dead letters {d['dlq']}"]
            lines += [f"  clinicians   {h}: {url}" for h, url in d["inboxes"].items()]
            lines += [f"  hospital     {h}: role {a['role_arn']}, gateway queue {a['results_queue_url']} "
                      f"(its credentials: --json, or the s3 cp line below)" for h, a in d["hospitals"].items()]
            worklist = d["services"]["worklist"]
            lines += [f"  worklist     {worklist['url']}  (results API and page, tokens minted locally)"]
            lines += [f"  sign in      press Sign in on the page, then type one of: "
                      f"{', '.join(worklist['sign_in_hospitals'])}"]
            lines += [f"  function     {d['services']['function']['workers']} worker(s), batch size "
                      f"{d['services']['function']['batch_size']}, timeout {d['services']['function']['timeout_s']} s",
                      f"  samples      {', '.join(str(p.relative_to(ROOT)) for p in samples)}", "",
                      "Try it with the AWS CLI:", *(f"  {c}" for c in commands), ""]
            _say(args, lock, ready, "\n".join(lines))
        while not stop.wait(0.5):
            pass
    finally:
        print("stopping: workers finish their batch ...", file=sys.stderr, flush=True)
        deployment.stop()
    _say(args, lock, {"event": "stopped"}, "stopped")
    return 0
