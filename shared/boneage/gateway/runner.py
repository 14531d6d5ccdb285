"""The gateway process: the listener, the uploader, the results consumer and the deliverer together.

``Gateway(config).start()`` locks the spool (one gateway per spool), starts the DICOM listener and one
thread each for uploads, results and deliveries; ``stop()`` stops accepting associations, lets the
threads finish what they are doing and releases the spool. ``run_forever`` adds SIGTERM/SIGINT.
Logs are JSON lines on stderr (``JsonFormatter``): event, refs and upload ids, never a UID or a name.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from typing import Any

from boneage.gateway.config import GatewayConfig
from boneage.gateway.delivery import Deliverer, Sender, make_sender
from boneage.gateway.listener import start_listener
from boneage.gateway.results import ResultsConsumer
from boneage.gateway.spool import Spool
from boneage.gateway.uploader import Uploader

logger = logging.getLogger("boneage.gateway")

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                                + f".{int(record.msecs):03d}Z", "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[0] is not None:
            line["fault"] = record.exc_info[0].__name__
        return json.dumps(line, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("boneage.gateway")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # pynetdicom's own warnings (aborts, refused contexts) as JSON lines too; its INFO lines print
    # dataset summaries, so they stay off.
    netdicom = logging.getLogger("pynetdicom")
    netdicom.handlers[:] = [handler]
    netdicom.setLevel(logging.WARNING)
    netdicom.propagate = False


def aws_clients(config: GatewayConfig) -> tuple[Any, Any]:
    """S3 and SQS clients on boto3's standard credential chain (env, profile, credential_process)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=config.aws.region)
    # Our own back-off does the waiting; boto3 only smooths a blip. The read timeout outlasts a long poll.
    cfg = Config(connect_timeout=5, read_timeout=config.aws.wait_time_s + 15,
                 retries={"max_attempts": 2, "mode": "standard"})
    endpoint = config.aws.endpoint_url
    return (session.client("s3", endpoint_url=endpoint, config=cfg),
            session.client("sqs", endpoint_url=endpoint, config=cfg))


class Gateway:
    def __init__(self, config: GatewayConfig, *, s3: Any = None, sqs: Any = None, sender: Sender | None = None,
                 config_path: str = "PATH") -> None:
        self.config = config
        self.spool = Spool(config.spool_dir)
        if s3 is None or sqs is None:
            s3, sqs = aws_clients(config)
        self.uploader = Uploader(config, self.spool, s3)
        self.deliverer = Deliverer(config, self.spool, s3, sender if sender is not None else make_sender(config),
                                   config_path=config_path)
        self.results = ResultsConsumer(config, self.spool, sqs, on_delivery=self.deliverer.wake.set)
        self.server: Any = None
        self.threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return int(self.server.server_address[1]) if self.server is not None else self.config.listen_port

    def start(self) -> Gateway:
        self.spool.lock()
        self.spool.create()
        if self.deliverer.sender is None:
            logger.warning("no pacs or stow_url configured: results are kept in the spool, not delivered")
        self.server = start_listener(self.config, self.spool, on_received=self.uploader.wake.set)
        for name, target in (("uploader", self.uploader.run), ("results", self.results.run),
                             ("delivery", self.deliverer.run)):
            thread = threading.Thread(target=target, name=f"gateway-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)
        logger.info("gateway started", extra={"ae_title": self.config.ae_title, "port": self.port,
                                              "hospital_id": self.config.hospital_id,
                                              "pending_uploads": len(self.spool.inbox_refs()),
                                              "pending_deliveries": len(self.spool.pending_deliveries())})
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        if self.server is not None:
            open_now = list(self.server.active_associations)
            self.server.shutdown()          # no new associations
            # Open ones may finish what they are sending; one still open at the deadline dies with the
            # process, and the sender, never having had a success for it, sends it again.
            for assoc in open_now:
                assoc.join(max(0.0, deadline - time.monotonic()))
            self.server = None
        for worker in (self.uploader, self.results, self.deliverer):
            worker.stop.set()
        self.uploader.wake.set()
        self.deliverer.wake.set()
        for thread in self.threads:
            # The results thread may sit in a long poll: nothing it holds is lost by leaving it (a message
            # is deleted only after it is recorded), so it gets no more than the time left.
            thread.join(max(0.0, deadline - time.monotonic()))
        self.threads = []
        self.spool.unlock()
        logger.info("gateway stopped")

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_forever(config: GatewayConfig, *, config_path: str = "PATH") -> int:
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        logger.info("stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gateway = Gateway(config, config_path=config_path).start()
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        gateway.stop(timeout_s=5.0)
    return 0
