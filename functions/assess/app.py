"""Lambda entry point of the assessment function: SQS batches of S3 upload events in, partial-batch response out.

Thin on purpose: the per-upload flow lives in ``boneage.processor``. All the uploads of one
invocation go to the processor together, so the model assesses them as one batch; each SQS message is
then failed or acknowledged on its own uploads' outcomes. The model, the clients
and the configuration are created once, at init (module load), and can be replaced with ``init()``
in tests. A raw S3 event (``sam local invoke -e events/s3-put.json``) is accepted too.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from boneage.adapters.events import uploads_from_s3_event, uploads_from_sqs_body
from boneage.adapters.powertools import Powertools, sqs_batch
from boneage.adapters.runtime import build_processor
from boneage.config import Settings
from boneage.errors import Reason
from boneage.processor import Outcome, UploadProcessor
from boneage.upload import Upload

powertools = Powertools.create()      # no SDK patching, no event logging: keys may carry names
logger, tracer, metrics = powertools.logger, powertools.tracer, powertools.metrics
batch = sqs_batch()

_processor: UploadProcessor | None = None


def init(processor: UploadProcessor | None = None) -> UploadProcessor:
    """Build (or inject) the processor. Called at module load so model loading counts as Lambda init."""
    global _processor
    if processor is None:
        from boneage.engine import load_engine
        from boneage.imaging import Limits
        from boneage.service import AssessmentService

        settings = Settings.from_env()                         # the one read of the environment
        engine = load_engine(settings.engine.model_dir or None, backend=settings.engine.backend,
                             threads=settings.engine.threads)  # loads, falls back if it must, warms up
        service = AssessmentService(engine.assessor, limits=Limits.from_settings(settings.ingest))
        processor = build_processor(settings, service)
        logger.info("initialised", extra={"backend": engine.backend, "model_version": engine.model_version})
        if not settings.uploader_registry:
            # template.yaml always sets it: without it anyone who may write a folder is taken for its hospital.
            logger.warning("UPLOADER_REGISTRY is not set: the uploader check is off")
    _processor = processor
    return processor


def _process(uploads: list[Upload], attempts: list[int], context: Any = None) -> list[Outcome | Exception]:
    assert _processor is not None
    # The use case sees the deadline as seconds left, nothing of Lambda: it stops an upload before
    # the model stage rather than be killed by the timeout halfway through writing its result.
    remaining_s = (lambda: context.get_remaining_time_in_millis() / 1000) if context is not None else None
    outcomes = _processor.process_many(uploads, attempts, remaining_s=remaining_s)
    for outcome in outcomes:
        name = "fault" if isinstance(outcome, Exception) else outcome.outcome
        metrics.add_metric(name=f"Uploads_{name}", unit=MetricUnit.Count, value=1)
        if not isinstance(outcome, Exception) and outcome.reason == Reason.UPLOADER_MISMATCH:
            # The operator's signal (UploaderMismatchAlarm): the folder's hospital is never told.
            metrics.add_metric(name="UploaderMismatch", unit=MetricUnit.Count, value=1)
    return outcomes


@tracer.capture_method
def _assess_messages(records: list[dict[str, Any]], context: Any = None) -> dict[str, Exception]:
    """Every message's uploads in one ``process_many``; returns the first fault of each failed message."""
    owners, uploads, attempts = [], [], []
    for raw in records:
        record = SQSRecord(raw)
        found = uploads_from_sqs_body(record.body)
        if not found:
            # s3:TestEvent or an unrelated message: drop it rather than poison the queue.
            logger.info("message without uploads ignored", extra={"message_id": record.message_id})
        attempt = int(record.attributes.approximate_receive_count or 1)
        owners += [record.message_id] * len(found)
        uploads += found
        attempts += [attempt] * len(found)
    faults: dict[str, Exception] = {}
    for message_id, outcome in zip(owners, _process(uploads, attempts, context), strict=True):
        if isinstance(outcome, Exception):
            faults.setdefault(message_id, outcome)
    return faults


@powertools.handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if _processor is None:
        init()
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:s3":
        # Direct S3 invocation (asynchronous): a fault raises, and Lambda's own retries apply (the
        # uploads that did finish are duplicates then, and are not assessed again).
        uploads = list(uploads_from_s3_event(event))
        for outcome in _process(uploads, [1] * len(uploads), context):
            if isinstance(outcome, Exception):
                raise outcome
        return {"batchItemFailures": []}
    faults = _assess_messages(records, context)

    def record_handler(record: SQSRecord) -> None:
        # The work is done; Powertools turns the faults into the partial-batch response.
        if record.message_id in faults:
            raise faults[record.message_id]

    return process_partial_response(event=event, record_handler=record_handler, processor=batch, context=context)


# Lambda init: in Lambda (and `sam local invoke`) load the model and create the clients before the first
# event. Elsewhere (tests, scripts) the first call or an explicit init(processor) does it.
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    init()
