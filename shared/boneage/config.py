"""Run-time configuration of the AWS side, read from environment variables in one place.

Every setting has a default that suits a local run against the emulator, so ``Settings.from_env()``
works on a laptop with nothing set. Endpoints are never configured here: boto3 reads its standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_DYNAMODB`` ... variables itself,
which is how the local stack points the same code at moto.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# Hospital ids are path segments chosen by us when onboarding a hospital; the pattern keeps them out
# of the way of URL encoding, DynamoDB key design and SNS filter policies.
HOSPITAL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def _csv(env: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(part.strip() for part in env.get(name, "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """What the handler, the adapters and the scripts need to know about the deployment."""

    results_table: str = "boneage-results"
    results_bucket: str = "boneage-results"
    topic_arn: str = ""
    dlq_url: str = ""                       # read by the redrive script only
    queue_url: str = ""                     # read by the redrive script only
    input_prefix: str = "incoming/"         # uploads live under <input_prefix><hospital_id>/...
    reports_prefix: str = "reports/"        # in the results bucket; never under input_prefix (no loop)
    max_receive_count: int = 3              # the queue's redrive maxReceiveCount: the last attempt writes `failed`
    lease_seconds: int = 120                # how long a claim blocks duplicates; >= function timeout
    report_url_expiry_s: int = 3600         # presigned report URL lifetime in notifications
    allowed_hospitals: frozenset[str] = field(default_factory=frozenset)  # empty: any well-formed id
    max_object_bytes: int = 200 * 1024 * 1024  # checked on HeadObject before anything is downloaded
    region: str = "us-east-1"
    model_dir: str = ""                     # compiled model artifact folder; empty: the committed demo weights

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            results_table=env.get("RESULTS_TABLE", d.results_table),
            results_bucket=env.get("RESULTS_BUCKET", d.results_bucket),
            topic_arn=env.get("TOPIC_ARN", d.topic_arn),
            dlq_url=env.get("DLQ_URL", d.dlq_url),
            queue_url=env.get("QUEUE_URL", d.queue_url),
            input_prefix=env.get("INPUT_PREFIX", d.input_prefix),
            reports_prefix=env.get("REPORTS_PREFIX", d.reports_prefix),
            max_receive_count=_int(env, "MAX_RECEIVE_COUNT", d.max_receive_count),
            lease_seconds=_int(env, "LEASE_SECONDS", d.lease_seconds),
            report_url_expiry_s=_int(env, "REPORT_URL_EXPIRY_S", d.report_url_expiry_s),
            allowed_hospitals=_csv(env, "ALLOWED_HOSPITALS"),
            max_object_bytes=_int(env, "MAX_OBJECT_BYTES", d.max_object_bytes),
            region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", d.region)),
            model_dir=env.get("MODEL_DIR", d.model_dir),
        )

    def as_env(self) -> dict[str, str]:
        """The environment that reproduces these settings (events/env.json, the local stack)."""
        return {
            "RESULTS_TABLE": self.results_table,
            "RESULTS_BUCKET": self.results_bucket,
            "TOPIC_ARN": self.topic_arn,
            "DLQ_URL": self.dlq_url,
            "QUEUE_URL": self.queue_url,
            "INPUT_PREFIX": self.input_prefix,
            "REPORTS_PREFIX": self.reports_prefix,
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "LEASE_SECONDS": str(self.lease_seconds),
            "REPORT_URL_EXPIRY_S": str(self.report_url_expiry_s),
            "ALLOWED_HOSPITALS": ",".join(sorted(self.allowed_hospitals)),
            "AWS_REGION": self.region,
            "MODEL_DIR": self.model_dir,
        }
