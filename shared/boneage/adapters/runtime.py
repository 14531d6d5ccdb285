"""Wiring: boto3 clients and adapters built once from ``Settings`` (at Lambda init), injectable for tests.

``build_processor`` plugs the AWS adapters into the ports of the upload use case
(``boneage.processor.UploadProcessor``). The assessment service (torch) is passed in by the caller, so
this module and every adapter stay torch-free; ``functions/assess/app.py`` and the scripts are the
composition roots.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from boneage.adapters.registry import UploaderRegistry
from boneage.adapters.reports import ReportWriter
from boneage.adapters.s3 import ObjectReader
from boneage.adapters.sns import Publisher
from boneage.adapters.store import ResultStore
from boneage.config import Settings
from boneage.ports import AssessmentService
from boneage.processor import UploadProcessor

# Standard retry mode with few attempts: Lambda and SQS retry the whole upload anyway, and a fast
# failure keeps one slow dependency from eating the function timeout.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20,
                       signature_version="s3v4")


@dataclass(frozen=True)
class Clients:
    s3: Any
    dynamodb: Any
    sns: Any
    sqs: Any
    ssm: Any = None         # the uploader registry's; None: created from the settings when one is needed

    @classmethod
    def create(cls, settings: Settings, *, session: boto3.session.Session | None = None,
               config: Config = CLIENT_CONFIG) -> Clients:
        # Endpoints come from AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> (boto3 reads them itself).
        session = session or boto3.session.Session(region_name=settings.region)
        return cls(
            s3=session.client("s3", config=config),
            dynamodb=session.client("dynamodb", config=config),
            sns=session.client("sns", config=config),
            sqs=session.client("sqs", config=config),
            ssm=session.client("ssm", config=config),
        )


def build_processor(settings: Settings, service: AssessmentService, *, clients: Clients | None = None,
                    clock: Callable[[], float] = time.time) -> UploadProcessor:
    clients = clients or Clients.create(settings)
    uploaders = None
    if settings.uploader_registry:
        ssm = clients.ssm or boto3.session.Session(region_name=settings.region).client("ssm", config=CLIENT_CONFIG)
        uploaders = UploaderRegistry(ssm, settings.uploader_registry)
    return UploadProcessor(
        settings=settings,
        objects=ObjectReader(clients.s3, max_bytes=settings.ingest.max_file_bytes),
        service=service,
        store=ResultStore(clients.dynamodb, settings.results_table),
        reports=ReportWriter(clients.s3, settings.results_bucket, prefix=settings.reports_prefix,
                             url_expiry_s=settings.report_url_expiry_s),
        publisher=Publisher(clients.sns, settings.topic_arn),
        uploaders=uploaders,
        clock=clock,
    )
