"""The Powertools set-up the upload functions' handlers share (assessment and finalizer).

One Logger, Tracer and Metrics per handler module, made the same way, and the decorators every
handler wears, in one order: metrics flushed after each invocation, the invocation traced, the
Lambda context logged. Two choices are about patient data: the tracer patches no SDK (X-Ray's boto3
patch records the ``Key`` of every S3 call, and hospitals' keys may carry names), and the event is
never logged (events carry object keys). ``SERVICE`` and ``NAMESPACE`` are what template.yaml sets
as ``POWERTOOLS_SERVICE_NAME`` and ``POWERTOOLS_METRICS_NAMESPACE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

SERVICE = "boneage"
NAMESPACE = "BoneAge"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Powertools:
    """A handler module's logger, tracer and metrics (made at import, i.e. Lambda init)."""

    logger: Logger
    tracer: Tracer
    metrics: Metrics

    @classmethod
    def create(cls) -> Powertools:
        return cls(logger=Logger(service=SERVICE),
                   tracer=Tracer(service=SERVICE, auto_patch=False),   # no SDK patching: keys may carry names
                   metrics=Metrics(namespace=NAMESPACE, service=SERVICE))

    def handler(self, fn: F) -> F:
        """``fn`` as a Lambda handler: metrics flushed, traced, the context (never the event) logged."""
        logged = self.logger.inject_lambda_context(log_event=False)(fn)   # events carry keys, which may carry PHI
        return self.metrics.log_metrics(self.tracer.capture_lambda_handler(logged))  # type: ignore[return-value]


def sqs_batch() -> BatchProcessor:
    """The partial-batch processor of an SQS-triggered handler (``ReportBatchItemFailures``)."""
    return BatchProcessor(event_type=EventType.SQS)


__all__ = ["NAMESPACE", "SERVICE", "Powertools", "sqs_batch"]
