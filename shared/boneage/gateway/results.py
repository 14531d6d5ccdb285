"""The hospital's results queue -> deliveries and outcomes recorded in the spool.

Each message is a ``boneage.assessment.v1`` body (``boneage.notification``), delivered raw or inside
SNS's envelope. A message is deleted only once what it asks for is durably recorded: a completed
assessment of an instance this gateway uploaded becomes a pending delivery of its SC and SR; a
rejection or failure becomes an outcome kept for the operator (never sent to the PACS as an image).
A result for an instance still waiting in the inbox (the gateway restarted before recording the
upload) is left on the queue to come back; one for an upload this gateway never made is logged and
deleted. The same result twice (SQS redelivers) is recorded once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from boneage.gateway.config import GatewayConfig
from boneage.gateway.retry import backoff_s
from boneage.gateway.spool import Delivery, Spool
from boneage.result import COMPLETED, REPORT_SC, REPORT_SR, SCHEMA
from boneage.upload import object_ref_for

logger = logging.getLogger("boneage.gateway.results")

DICOM_REPORTS = (REPORT_SC, REPORT_SR)       # the DICOM objects the service writes for a DICOM source

KEEP_FOR_S = 5
DELETE = "delete"
KEEP = "keep"


def unwrap(body: str) -> dict[str, Any] | None:
    """The assessment body from an SQS message body: raw delivery, or the SNS envelope's ``Message``."""
    try:
        value = json.loads(body)
        if isinstance(value, dict) and value.get("Type") == "Notification" and isinstance(value.get("Message"), str):
            value = json.loads(value["Message"])
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(value, dict) or value.get("schema") != SCHEMA or not isinstance(value.get("upload_id"), str):
        return None
    return value


class ResultsConsumer:
    def __init__(self, config: GatewayConfig, spool: Spool, sqs: Any,
                 on_delivery: Callable[[], None] | None = None) -> None:
        self.config = config
        self.spool = spool
        self.sqs = sqs
        self.on_delivery = on_delivery
        self.stop = threading.Event()
        self.failures = 0
        self._refs: dict[str, str] = {}         # object_ref -> ref

    def _object_ref(self, ref: str) -> str:
        return object_ref_for(self.config.aws.upload_bucket, f"{self.config.upload_prefix}{ref}.dcm")

    def _ref_for(self, body: Mapping[str, Any]) -> str | None:
        """The spooled instance a result is for: by ``object_ref`` (a hash of the key we put it under),
        else by ``upload_id`` in the ledger."""
        object_ref = body.get("object_ref")
        if isinstance(object_ref, str):
            if object_ref not in self._refs:        # new since the last look: hash what the spool holds
                for ref in self.spool.known_refs():
                    self._refs.setdefault(self._object_ref(ref), ref)
            if object_ref in self._refs:
                return self._refs[object_ref]
        entry = self.spool.find_upload(body["upload_id"])
        return entry["ref"] if entry else None

    def handle(self, body: Mapping[str, Any] | None) -> str:
        """What to do with one message: ``DELETE`` (recorded, or nothing to record) or ``KEEP``."""
        if body is None:
            logger.error("results message is not a boneage.assessment.v1 body; dropped")
            return DELETE
        upload_id = body["upload_id"]
        ref = self._ref_for(body)
        if ref is None or self.spool.uploaded_entry(ref) is None:
            if ref is not None and self.spool.inbox_path(ref).exists():
                logger.info("result for an instance whose upload is not recorded yet; kept on the queue",
                            extra={"upload_id": upload_id, "ref": ref})
                return KEEP
            logger.info("result for an upload this gateway did not send; dropped", extra={"upload_id": upload_id})
            return DELETE
        status, reason = body.get("status"), body.get("reason")
        if status != COMPLETED:
            if self.spool.record_outcome(upload_id, {"ref": ref, "status": status, "reason": reason}):
                logger.warning("assessment not completed; kept for the operator, nothing sent to the PACS",
                               extra={"upload_id": upload_id, "ref": ref, "status": status, "reason": reason})
            return DELETE
        keys = body.get("report_keys") or {}
        reports = {name: keys[name] for name in DICOM_REPORTS if isinstance(keys.get(name), str)}
        if len(reports) != len(DICOM_REPORTS):
            self.spool.record_outcome(upload_id, {"ref": ref, "status": status, "reason": "no_dicom_reports"})
            logger.warning("completed assessment without its DICOM SC/SR; kept for the operator",
                           extra={"upload_id": upload_id, "ref": ref, "reason": "no_dicom_reports"})
            return DELETE
        if self.spool.add_delivery(Delivery(upload_id=upload_id, ref=ref, report_keys=reports)):
            logger.info("result queued for the PACS", extra={"upload_id": upload_id, "ref": ref})
            if self.on_delivery is not None:
                self.on_delivery()
        else:
            logger.info("result already recorded; duplicate message dropped", extra={"upload_id": upload_id})
        return DELETE

    def poll_once(self, wait_time_s: int | None = None) -> int:
        """One long poll; returns how many messages were handled."""
        response = self.sqs.receive_message(
            QueueUrl=self.config.aws.results_queue_url, MaxNumberOfMessages=10,
            WaitTimeSeconds=self.config.aws.wait_time_s if wait_time_s is None else wait_time_s,
            VisibilityTimeout=self.config.aws.visibility_timeout_s)
        messages = response.get("Messages", [])
        for message in messages:
            if self.handle(unwrap(message.get("Body", ""))) == DELETE:
                self.sqs.delete_message(QueueUrl=self.config.aws.results_queue_url,
                                        ReceiptHandle=message["ReceiptHandle"])
            else:
                self._back_soon(message["ReceiptHandle"])
        return len(messages)

    def _back_soon(self, receipt_handle: str) -> None:
        """Make a kept message visible again in a few seconds rather than after the visibility timeout.
        Optional: a role without sqs:ChangeMessageVisibility just waits for the timeout."""
        try:
            self.sqs.change_message_visibility(QueueUrl=self.config.aws.results_queue_url,
                                               ReceiptHandle=receipt_handle, VisibilityTimeout=KEEP_FOR_S)
        except Exception as exc:
            logger.info("could not shorten a kept message's visibility; it returns after the timeout",
                        extra={"fault": type(exc).__name__})

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once()
                self.failures = 0
            except Exception as exc:
                self.failures += 1
                delay = backoff_s(self.failures, self.config.retry)
                logger.warning("results queue unreachable; retrying",
                               extra={"fault": type(exc).__name__, "attempt": self.failures,
                                      "retry_in_s": round(delay, 2)})
                self.stop.wait(delay)
