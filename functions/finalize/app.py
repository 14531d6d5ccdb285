"""Lambda entry point of the finalizer: every upload ends in a terminal record, even when its deliveries
were killed.

The assessment handler records ``failed`` on the last attempt only when Python catches the fault; a
function timeout or an out-of-memory kill runs nothing more, and would leave the record ``processing``
with nobody notified. This function has the last word, from two triggers:

- The dead-letter queue (event source mapping, ``ReportBatchItemFailures``). A message lands there only
  after ``MaxReceiveCount`` deliveries, so no delivery of it is left. For each of its uploads
  ``UploadProcessor.finalize`` writes ``failed`` where no result stands (never over a result or a live
  claim) and sends the record's notification once; then the message is parked in the redrive queue
  (a fresh 14-day retention, read by ``scripts/redrive.py``) and the mapping deletes it from the
  dead-letter queue. A message it could not settle fails and stays there, retried after the queue's
  visibility timeout.
- An EventBridge schedule (the sweep). Records still ``processing`` more than ``STUCK_AFTER_S`` past
  their lease lost their event (a redrive killed mid-way, a finalizer that failed until the event
  expired): they are counted in the ``StuckUploads`` metric, which ``StuckUploadsAlarm`` watches, and
  settled the same way.

It runs in the assessment image with its own command (``finalize_app.handler``) but loads no model and
imports no torch: only the adapters and the upload use case.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from boneage.adapters.events import uploads_from_sqs_body
from boneage.adapters.powertools import Powertools, sqs_batch
from boneage.adapters.runtime import Clients, build_processor
from boneage.config import Settings
from boneage.processor import UploadProcessor
from boneage.result import AssessmentResult

powertools = Powertools.create()      # no SDK patching, no event logging: keys may carry names
logger, tracer, metrics = powertools.logger, powertools.tracer, powertools.metrics
batch = sqs_batch()

_processor: UploadProcessor | None = None
_park: Callable[[str], None] | None = None


class NoModel:
    """The assessment service port for a function that assesses nothing: it only settles records."""

    model_version = ""

    def assess(self, data: bytes, *, source: str, metadata: Mapping[str, str] | None = None,
               want_reports: bool = True) -> tuple[AssessmentResult, dict[str, bytes]]:
        raise RuntimeError("the finalizer does not assess uploads")

    def assess_many(self, items: list[tuple[bytes, str, Mapping[str, str] | None]], *,
                    want_reports: bool = True) -> list[tuple[AssessmentResult, dict[str, bytes]]]:
        raise RuntimeError("the finalizer does not assess uploads")


def init(processor: UploadProcessor | None = None, park: Callable[[str], None] | None = None) -> UploadProcessor:
    """Build (or inject) the processor and the parking of settled events; at module load in Lambda."""
    global _processor, _park
    if processor is None or park is None:
        settings = processor.settings if processor is not None else Settings.from_env()
        if not settings.redrive_queue_url:
            raise ValueError("REDRIVE_QUEUE_URL is not set: a settled event would be lost to the redrive")
        clients = Clients.create(settings)
        processor = processor or build_processor(settings, NoModel(), clients=clients)
        park = park or _parking(clients.sqs, settings.redrive_queue_url)
    _processor, _park = processor, park
    return processor


def _parking(sqs: Any, queue_url: str) -> Callable[[str], None]:
    def park(body: str) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    return park


def _settle(record: SQSRecord) -> None:
    assert _processor is not None and _park is not None
    for upload in uploads_from_sqs_body(record.body):
        outcome = _processor.finalize(upload)
        metrics.add_metric(name=f"Finalized_{outcome.outcome}", unit=MetricUnit.Count, value=1)
    # Parked only once settled: a failure above leaves the event in the dead-letter queue for a retry.
    _park(record.body)


@powertools.handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if _processor is None:
        init()
    assert _processor is not None
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        report = _processor.sweep(stuck_after_s=_processor.settings.stuck_after_s)
        # Published every run, zero included, so the alarm sees data whenever the sweep runs.
        metrics.add_metric(name="StuckUploads", unit=MetricUnit.Count, value=report.stuck)
        metrics.add_metric(name="StuckUploadsFinalized", unit=MetricUnit.Count, value=report.finalized)
        return {"stuck": report.stuck, "finalized": report.finalized}
    return process_partial_response(event=event, record_handler=_settle, processor=batch, context=context)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    init()
