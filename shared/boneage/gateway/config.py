"""The gateway's configuration: one JSON file, typed, checked when it is loaded.

Example (every field; those with a default may be left out)::

    {
      "hospital_id": "st-mary",                 # the folder under incoming/ and reports/ (required)
      "ae_title": "BONEAGE",                    # our AE title; callers must call it (required)
      "listen_host": "0.0.0.0",                 # where the C-STORE SCP listens
      "listen_port": 11112,
      "allowed_calling_aets": ["PACS", "CR1"],  # required, non-empty: anyone else is rejected
      "spool_dir": "/var/spool/boneage",        # durable local state (a volume in the container)
      "max_pdu": 0,                             # 0: unlimited
      "upload_concurrency": 4,                  # puts in flight at once (each is a WAN round trip)
      "aws": {
        "region": "eu-west-1",
        "endpoint_url": null,                   # an emulator's URL; null: AWS (or AWS_ENDPOINT_URL)
        "upload_bucket": "boneage-input-...",
        "results_bucket": "boneage-results-...",
        "results_queue_url": "https://sqs.eu-west-1.amazonaws.com/.../boneage-results-st-mary",
        "wait_time_s": 20,                      # SQS long polling (0-20)
        "visibility_timeout_s": 60
      },
      "pacs": {"host": "pacs.local", "port": 104, "ae_title": "PACS"},   # C-STORE SCU destination
      "stow_url": null,                         # or DICOMweb STOW-RS, e.g. http://pacs:8042/dicom-web/studies
      "retry": {"initial_backoff_s": 1, "max_backoff_s": 300,
                "max_delivery_attempts": 3,         # refusals by the PACS before a result is dead-lettered
                "max_delivery_age_s": 259200}       # PACS down/busy: retried this long (72 h) before it is
    }

At least one of ``pacs`` and ``stow_url`` is needed for results to go anywhere; with both, C-STORE
is used. A delivery the PACS refuses (association rejected permanently, no acceptable presentation
context, C-STORE failure status other than "out of resources", HTTP 4xx) is dead-lettered after
``max_delivery_attempts`` refusals; one that fails for a transient reason (PACS unreachable, busy,
HTTP 5xx/408/429) keeps being retried, with back-off capped at ``max_backoff_s``, until it has been
failing for ``max_delivery_age_s``, so that a maintenance window does not dead-letter every result.
AWS credentials are never in this file: boto3's standard chain finds them (environment,
``AWS_PROFILE``, or a profile whose ``credential_process`` runs IAM Roles Anywhere's
``aws_signing_helper`` with the hospital's X.509 certificate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boneage.config import HOSPITAL_ID_PATTERN

AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")      # DICOM AE VR: 16 characters, no backslash


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or has a wrong field (the message names it)."""


@dataclass(frozen=True)
class AwsConfig:
    upload_bucket: str
    results_bucket: str
    results_queue_url: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    wait_time_s: int = 20
    visibility_timeout_s: int = 60


@dataclass(frozen=True)
class PacsConfig:
    host: str
    port: int
    ae_title: str


@dataclass(frozen=True)
class RetryConfig:
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    max_delivery_attempts: int = 3              # refusals (permanent failures) before the dead letter
    max_delivery_age_s: float = 72 * 3600.0     # transient failures are retried this long


@dataclass(frozen=True)
class GatewayConfig:
    hospital_id: str
    ae_title: str
    allowed_calling_aets: tuple[str, ...]
    spool_dir: Path
    aws: AwsConfig
    listen_host: str = "0.0.0.0"
    listen_port: int = 11112
    pacs: PacsConfig | None = None
    stow_url: str | None = None
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_pdu: int = 0
    upload_concurrency: int = 4

    @property
    def upload_prefix(self) -> str:
        return f"incoming/{self.hospital_id}/"

    @classmethod
    def load(cls, path: str | Path) -> GatewayConfig:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read the gateway configuration {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not JSON: {exc}") from None
        base = Path(path).resolve().parent
        return cls.from_dict(raw, base=base)

    @classmethod
    def from_dict(cls, raw: Any, *, base: Path | None = None) -> GatewayConfig:
        if not isinstance(raw, Mapping):
            raise ConfigError("the gateway configuration must be a JSON object")
        hospital_id = _str(raw, "hospital_id")
        if not HOSPITAL_ID_PATTERN.match(hospital_id):
            raise ConfigError(f"hospital_id {hospital_id!r} must match {HOSPITAL_ID_PATTERN.pattern}")
        ae_title = _ae(_str(raw, "ae_title"), "ae_title")
        allowed = raw.get("allowed_calling_aets")
        if not isinstance(allowed, list) or not allowed:
            # Fail closed: an empty list would mean "anyone on the network may store", which is
            # never what a hospital wants from a node that forwards images off site.
            raise ConfigError("allowed_calling_aets must list at least one calling AE title")
        allowed_aets = tuple(_ae(a, "allowed_calling_aets") for a in allowed)
        spool = Path(_str(raw, "spool_dir"))
        if base is not None and not spool.is_absolute():
            spool = base / spool
        aws_raw = raw.get("aws")
        if not isinstance(aws_raw, Mapping):
            raise ConfigError("aws must be an object with upload_bucket, results_bucket and results_queue_url")
        aws = AwsConfig(
            upload_bucket=_str(aws_raw, "upload_bucket", "aws."), results_bucket=_str(aws_raw, "results_bucket", "aws."),
            results_queue_url=_str(aws_raw, "results_queue_url", "aws."),
            region=_str(aws_raw, "region", "aws.", default="us-east-1"),
            endpoint_url=aws_raw.get("endpoint_url") or None,
            wait_time_s=_int(aws_raw, "wait_time_s", 20, 0, 20, "aws."),
            visibility_timeout_s=_int(aws_raw, "visibility_timeout_s", 60, 0, 43200, "aws."),
        )
        pacs = None
        if raw.get("pacs") is not None:
            p = raw["pacs"]
            if not isinstance(p, Mapping):
                raise ConfigError("pacs must be an object with host, port and ae_title")
            pacs = PacsConfig(host=_str(p, "host", "pacs."), port=_int(p, "port", None, 1, 65535, "pacs."),
                              ae_title=_ae(_str(p, "ae_title", "pacs."), "pacs.ae_title"))
        stow_url = raw.get("stow_url") or None
        if stow_url is not None and not (isinstance(stow_url, str) and stow_url.startswith(("http://", "https://"))):
            raise ConfigError("stow_url must be an http(s) URL")
        r = raw.get("retry") or {}
        if not isinstance(r, Mapping):
            raise ConfigError("retry must be an object")
        retry = RetryConfig(
            initial_backoff_s=_float(r, "initial_backoff_s", 1.0), max_backoff_s=_float(r, "max_backoff_s", 300.0),
            max_delivery_attempts=_int(r, "max_delivery_attempts", 3, 1, 10_000, "retry."),
            max_delivery_age_s=_float(r, "max_delivery_age_s", 72 * 3600.0),
        )
        if retry.max_backoff_s < retry.initial_backoff_s:
            raise ConfigError("retry.max_backoff_s must not be below retry.initial_backoff_s")
        return cls(hospital_id=hospital_id, ae_title=ae_title, allowed_calling_aets=allowed_aets, spool_dir=spool,
                   aws=aws, listen_host=_str(raw, "listen_host", default="0.0.0.0"),
                   listen_port=_int(raw, "listen_port", 11112, 0, 65535), pacs=pacs, stow_url=stow_url, retry=retry,
                   max_pdu=_int(raw, "max_pdu", 0, 0, 2**32 - 1),
                   upload_concurrency=_int(raw, "upload_concurrency", 4, 1, 64))


_MISSING = object()


def _str(raw: Mapping[str, Any], name: str, where: str = "", default: Any = _MISSING) -> str:
    value = raw.get(name, default)
    if value is _MISSING or value is None:
        raise ConfigError(f"{where}{name} is required")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}{name} must be a non-empty string")
    return value.strip()


def _ae(value: Any, name: str) -> str:
    if not isinstance(value, str) or not AE_TITLE.match(value.strip() or "\\"):
        raise ConfigError(f"{name}: {value!r} is not an AE title (1-16 printable characters, no backslash)")
    return value.strip()


def _int(raw: Mapping[str, Any], name: str, default: int | None, low: int, high: int, where: str = "") -> int:
    value = raw.get(name, default)
    if value is None:
        raise ConfigError(f"{where}{name} is required")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}{name} must be a whole number from {low} to {high}")
    return value


def _float(raw: Mapping[str, Any], name: str, default: float) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"retry.{name} must be a number of seconds >= 0")
    return float(value)
