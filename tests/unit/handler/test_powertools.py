"""The Powertools set-up the assessment and finalizer handlers share (``boneage.adapters.powertools``)."""

from __future__ import annotations

import io
import json

from aws_lambda_powertools.metrics import MetricUnit

from boneage.adapters.powertools import NAMESPACE, SERVICE, Powertools
from boneage.devstack import LambdaContext, load_finalizer, load_handler

# Loaded at collection, before sockets are disabled: the X-Ray SDK under Powertools' Tracer opens
# (and, with tracing disabled, never uses) a UDP socket when it is first imported.
HANDLERS = {"assess": load_handler(), "finalize": load_finalizer()}
KEY = "incoming/st-mary/Doe-Jane-2015-03-12.dcm"


def test_a_handler_logs_its_context_never_its_event_and_flushes_its_metrics(capsys):
    tools = Powertools.create()
    # The log handler keeps the stream it was made with (maybe in an earlier test): read it here.
    logged = io.StringIO()
    stream = tools.logger.registered_handler.setStream(logged)

    @tools.handler
    def handler(event, context):
        tools.metrics.add_metric(name="Probe", unit=MetricUnit.Count, value=1)
        tools.logger.info("inside")
        return {"seen": len(event["Records"])}

    context = LambdaContext()
    try:
        assert handler({"Records": [{"s3": {"object": {"key": KEY}}}]}, context) == {"seen": 1}
    finally:
        tools.logger.registered_handler.setStream(stream)
    printed = logged.getvalue() + capsys.readouterr().out      # metrics are printed (EMF)
    assert KEY not in printed
    lines = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    [inside] = [line for line in lines if line.get("message") == "inside"]
    assert inside["service"] == SERVICE and inside["function_request_id"] == context.aws_request_id
    [emf] = [line for line in lines if "_aws" in line]
    assert emf["Probe"] == [1.0] or emf["Probe"] == 1.0
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE


def test_both_upload_handlers_wear_the_shared_set_up():
    for app in HANDLERS.values():
        assert isinstance(app.powertools, Powertools)
        assert (app.logger, app.tracer, app.metrics) == (app.powertools.logger, app.powertools.tracer,
                                                          app.powertools.metrics)
        assert app.tracer.auto_patch is False
