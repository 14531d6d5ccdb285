"""``boneage gateway``: the hospital's DICOM gateway (``boneage.gateway``) and its operator commands.

- ``run --config PATH``      the gateway in the foreground: C-STORE SCP, uploads, results, deliveries;
                             JSON log lines on stderr; SIGTERM/SIGINT stop it cleanly (exit 0).
- ``status --config PATH``   spool depth, pending uploads and deliveries, dead letters, rejections and
                             failures kept for the operator, instances acknowledged but not uploaded
                             (``ignored``: not radiographs, our own results sent back); reads the
                             spool, so it works whether or not the gateway runs.
- ``resend --config PATH``   dead-lettered deliveries back to pending (the running gateway, or the
                             next one started, sends them).
- ``check --config PATH``    loads and prints the configuration (exit 2 on an error in it).

With ``--json`` each prints one JSON object on stdout. Exit status 2: the configuration is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "the DICOM gateway: run it, show its spool (status), re-send dead-lettered results (resend)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("run", "run the gateway in the foreground until SIGTERM/SIGINT"),
                       ("status", "spool depth, pending uploads and deliveries, dead letters, kept rejections"),
                       ("resend", "move dead-lettered deliveries back to pending"),
                       ("check", "load the configuration and print it")):
        a = sub.add_parser(name, help=text, description=text)
        a.add_argument("--config", required=True, help="the gateway's JSON configuration file")
        a.add_argument("--json", action="store_true", help="one JSON object per line")


def _print(args: argparse.Namespace, event: dict[str, Any], text: str) -> None:
    print(json.dumps(event, default=str) if args.json else text, flush=True)


def run(args: argparse.Namespace) -> int:
    from boneage.gateway.config import ConfigError, GatewayConfig

    try:
        config = GatewayConfig.load(args.config)
    except ConfigError as exc:
        print(f"boneage gateway: {exc}", file=sys.stderr)
        return 2
    if args.action == "run":
        from boneage.gateway.runner import configure_logging, run_forever
        from boneage.gateway.spool import SpoolLocked

        configure_logging()
        try:
            return run_forever(config, config_path=args.config)
        except SpoolLocked as exc:
            print(f"boneage gateway: {exc}", file=sys.stderr)
            return 1
    from boneage.gateway.spool import Spool

    spool = Spool(config.spool_dir)
    if args.action == "status":
        status = spool.status()
        lines = [f"gateway {config.ae_title} for {config.hospital_id}: {'running' if status['running'] else 'not running'}",
                 f"spool: {status['spool_dir']} (depth {status['spool_depth']})",
                 f"pending uploads: {status['pending_uploads']} ({status['pending_upload_bytes']} bytes); "
                 f"uploaded: {status['uploaded']}",
                 f"pending deliveries: {status['pending_deliveries']} (retrying {status['deliveries_retrying']}, "
                 f"refused by the PACS {status['deliveries_refused']}); delivered: {status['delivered']}",
                 f"dead letters: {status['dead_letters']} (refused {status['dead_letters_refused']}, "
                 f"failing too long {status['dead_letters_max_age']})"
                 + (f" (re-send with: boneage gateway resend --config {args.config})" if status["dead_letters"] else ""),
                 f"rejections and failures kept: {status['rejections_and_failures']}",
                 f"ignored (acknowledged, not uploaded): {status['ignored']}"
                 + "".join(f"; {reason}: {n}" for reason, n in status["ignored_by_reason"].items())]
        lines += [f"  {o['upload_id']}: {o['status']} ({o['reason']})" for o in status["outcomes"]]
        _print(args, {"event": "status", **status}, "\n".join(lines))
        return 0
    if args.action == "resend":
        moved = spool.resend() if spool.dead.exists() else []
        _print(args, {"event": "resend", "moved": len(moved), "upload_ids": moved},
               f"{len(moved)} dead-lettered deliveries moved back to pending"
               + ("" if spool.running() or not moved else "; start the gateway to send them"))
        return 0
    _print(args, {"event": "config", "hospital_id": config.hospital_id, "ae_title": config.ae_title,
                  "listen": f"{config.listen_host}:{config.listen_port}",
                  "allowed_calling_aets": list(config.allowed_calling_aets), "spool_dir": str(config.spool_dir),
                  "destination": ("c-store" if config.pacs else "stow-rs" if config.stow_url else None)},
           f"configuration OK: {config.ae_title} on {config.listen_host}:{config.listen_port} for {config.hospital_id}")
    return 0
