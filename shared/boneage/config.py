"""Run-time configuration, read from environment variables in one place and passed down from there.

``Settings.from_env()`` is called once by each composition root (the Lambda handler's init, the
``boneage`` commands, the scripts); domain code (imaging, model, engine, service) never reads the
environment, it gets what it needs as arguments. Every setting has a default that suits a local run
against the emulator, so ``Settings.from_env()`` works on a laptop with nothing set. Endpoints are
never configured here: boto3 reads its standard ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL_DYNAMODB`` ... variables itself, which is how the local stack points the same code
at moto.

The deployment's AWS resources are top-level fields (what the adapters need); ``ingest`` (input
limits) and ``engine`` (model loading) are sections, because they are handed on whole to the
domain code that uses them.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Hospital ids are path segments chosen by us when onboarding a hospital; the pattern keeps them out
# of the way of URL encoding, DynamoDB key design and SNS filter policies.
HOSPITAL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

# Old variable -> its replacement. The old name still works for one release, with a warning.
DEPRECATED_NAMES = {"MAX_OBJECT_BYTES": "BONEAGE_MAX_FILE_BYTES"}


def _lookup(env: Mapping[str, str], name: str) -> tuple[str, str]:
    """(the variable that was set, its stripped value) for ``name``, falling back to a deprecated
    alias with a warning; ``(name, "")`` when neither is set."""
    raw = env.get(name, "").strip()
    if raw:
        return name, raw
    for old, new in DEPRECATED_NAMES.items():
        if new == name and env.get(old, "").strip():
            message = f"environment variable {old} is deprecated; set {new} instead"
            # Python hides DeprecationWarning outside __main__ (so in Lambda): log it as well.
            log.warning(message)
            warnings.warn(message, DeprecationWarning, stacklevel=4)
            return old, env[old].strip()
    return name, ""


def parse_int(env: Mapping[str, str], name: str, default: int, *, positive: bool = False) -> int:
    """``name`` as an integer; unset or blank means ``default``. A malformed value stops start-up
    with a message naming the variable, rather than running on a guess."""
    name, raw = _lookup(env, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc
    if positive and value <= 0:
        raise ValueError(f"environment variable {name} must be positive, got {value}")
    return value


def _csv(env: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(part.strip() for part in env.get(name, "").split(",") if part.strip())


@dataclass(frozen=True)
class IngestSettings:
    """How large an upload, and how many pixels, we agree to read (``boneage.imaging.Limits``)."""

    # 200 MiB: a large CR is 10-40 MB. Checked on HeadObject before anything is downloaded, and
    # again by ingest on the bytes (and on an inflated deflated dataset).
    max_file_bytes: int = 200 * 1024 * 1024
    # 50 megapixels, checked against headers before decoding (see boneage.imaging.limits).
    max_pixels: int = 50_000_000
    # Upload bytes one invocation holds at once: an SQS batch is fetched and assessed in sub-batches of
    # at most this many bytes (by the sizes in the S3 events; a larger upload goes alone). Ten uploads
    # at the 200 MiB limit would hold 2 GiB before one (up to ~2.2 GB) ingest even starts, past the
    # function's 3538 MB; typical 10-40 MB radiographs still share one model batch.
    max_batch_bytes: int = 200 * 1024 * 1024


@dataclass(frozen=True)
class EngineSettings:
    """How the model is loaded (``boneage.engine.load_engine``)."""

    model_dir: str = ""                     # compiled model artifact folder; empty: the committed demo weights
    backend: str | None = None              # force a backend or artifact name (aoti, ipex, aoti-bf16, ...)
    threads: int | None = None              # intra-op threads; None: from the CPU quota and affinity


@dataclass(frozen=True)
class Settings:
    """What the handler, the adapters, the commands and the scripts need to know about the deployment."""

    results_table: str = "boneage-results"
    results_bucket: str = "boneage-results"
    topic_arn: str = ""
    dlq_url: str = ""                       # read by the redrive script only
    queue_url: str = ""                     # read by the redrive script only
    input_prefix: str = "incoming/"         # uploads live under <input_prefix><hospital_id>/...
    reports_prefix: str = "reports/"        # in the results bucket; never under input_prefix (no loop)
    max_receive_count: int = 3              # the queue's redrive maxReceiveCount: the last attempt writes `failed`
    lease_seconds: int = 120                # how long a claim blocks duplicates; >= function timeout
    assess_budget_s: int = 5                # seconds one upload's model + report + persist stage is given (deadline check)
    stuck_after_s: int = 360                # a record `processing` this long past its lease lost its event (sweep)
    redrive_queue_url: str = ""             # where the finalizer parks dead-lettered events for the redrive
    report_url_expiry_s: int = 3600         # presigned report URL lifetime in notifications
    allowed_hospitals: frozenset[str] = field(default_factory=frozenset)  # empty: any well-formed id
    # SSM path prefix of the uploader registry (``/<stack>/hospitals/``; boneage.adapters.registry): an
    # upload is assessed only if the principal that put it is registered for its folder's hospital.
    # template.yaml always sets it (pinned by tests/unit/infra); empty leaves the check out (a bare run).
    uploader_registry: str = ""
    # The worklist's sign-in (results API): the authorization code grant with PKCE against the user
    # pool's hosted UI at <worklist_auth_domain>/oauth2/authorize and /oauth2/token, for the app client
    # without a secret, returning to worklist_redirect_uri (one of the client's callback URLs).
    worklist_auth_domain: str = ""          # https://<prefix>.auth.<region>.amazoncognito.com, no trailing slash
    worklist_client_id: str = ""
    worklist_redirect_uri: str = ""
    region: str = "us-east-1"
    ingest: IngestSettings = field(default_factory=IngestSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        threads = parse_int(env, "BONEAGE_THREADS", 0, positive=True)
        return cls(
            results_table=env.get("RESULTS_TABLE", d.results_table),
            results_bucket=env.get("RESULTS_BUCKET", d.results_bucket),
            topic_arn=env.get("TOPIC_ARN", d.topic_arn),
            dlq_url=env.get("DLQ_URL", d.dlq_url),
            queue_url=env.get("QUEUE_URL", d.queue_url),
            input_prefix=env.get("INPUT_PREFIX", d.input_prefix),
            reports_prefix=env.get("REPORTS_PREFIX", d.reports_prefix),
            max_receive_count=parse_int(env, "MAX_RECEIVE_COUNT", d.max_receive_count),
            lease_seconds=parse_int(env, "LEASE_SECONDS", d.lease_seconds),
            assess_budget_s=parse_int(env, "ASSESS_BUDGET_S", d.assess_budget_s),
            stuck_after_s=parse_int(env, "STUCK_AFTER_S", d.stuck_after_s, positive=True),
            redrive_queue_url=env.get("REDRIVE_QUEUE_URL", d.redrive_queue_url),
            report_url_expiry_s=parse_int(env, "REPORT_URL_EXPIRY_S", d.report_url_expiry_s),
            allowed_hospitals=_csv(env, "ALLOWED_HOSPITALS"),
            uploader_registry=env.get("UPLOADER_REGISTRY", d.uploader_registry).strip(),
            worklist_auth_domain=env.get("WORKLIST_AUTH_DOMAIN", d.worklist_auth_domain).strip().rstrip("/"),
            worklist_client_id=env.get("WORKLIST_CLIENT_ID", d.worklist_client_id).strip(),
            worklist_redirect_uri=env.get("WORKLIST_REDIRECT_URI", d.worklist_redirect_uri).strip(),
            region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", d.region)),
            ingest=IngestSettings(
                max_file_bytes=parse_int(env, "BONEAGE_MAX_FILE_BYTES", d.ingest.max_file_bytes, positive=True),
                max_pixels=parse_int(env, "BONEAGE_MAX_PIXELS", d.ingest.max_pixels, positive=True),
                max_batch_bytes=parse_int(env, "BONEAGE_MAX_BATCH_BYTES", d.ingest.max_batch_bytes, positive=True),
            ),
            engine=EngineSettings(
                model_dir=env.get("MODEL_DIR", d.engine.model_dir),
                backend=env.get("BONEAGE_BACKEND", "").strip() or None,
                threads=threads or None,
            ),
        )

    def as_env(self) -> dict[str, str]:
        """The environment that reproduces these settings (events/env.json, the local stack)."""
        env = {
            "RESULTS_TABLE": self.results_table,
            "RESULTS_BUCKET": self.results_bucket,
            "TOPIC_ARN": self.topic_arn,
            "DLQ_URL": self.dlq_url,
            "QUEUE_URL": self.queue_url,
            "INPUT_PREFIX": self.input_prefix,
            "REPORTS_PREFIX": self.reports_prefix,
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "LEASE_SECONDS": str(self.lease_seconds),
            "ASSESS_BUDGET_S": str(self.assess_budget_s),
            "STUCK_AFTER_S": str(self.stuck_after_s),
            "REDRIVE_QUEUE_URL": self.redrive_queue_url,
            "REPORT_URL_EXPIRY_S": str(self.report_url_expiry_s),
            "ALLOWED_HOSPITALS": ",".join(sorted(self.allowed_hospitals)),
            "UPLOADER_REGISTRY": self.uploader_registry,
            "WORKLIST_AUTH_DOMAIN": self.worklist_auth_domain,
            "WORKLIST_CLIENT_ID": self.worklist_client_id,
            "WORKLIST_REDIRECT_URI": self.worklist_redirect_uri,
            "AWS_REGION": self.region,
            "BONEAGE_MAX_FILE_BYTES": str(self.ingest.max_file_bytes),
            "BONEAGE_MAX_PIXELS": str(self.ingest.max_pixels),
            "BONEAGE_MAX_BATCH_BYTES": str(self.ingest.max_batch_bytes),
            "MODEL_DIR": self.engine.model_dir,
        }
        if self.engine.backend:
            env["BONEAGE_BACKEND"] = self.engine.backend
        if self.engine.threads:
            env["BONEAGE_THREADS"] = str(self.engine.threads)
        return env
