"""Lambda entry point of the results API: a hospital's assessments for its clinicians (HTTP API, payload v2).

The hospital is the ``custom:hospital_id`` claim of the caller's Cognito ID token, which API Gateway's
JWT authorizer has already checked (issuer, audience, expiry, signature); no path, query or header
ever names it, so one hospital cannot ask for another's results. A record of another hospital is
answered exactly like a missing one (404), so ids cannot be probed.

- ``GET /results``                      newest first, paginated (``limit``, ``next``), filtered by
                                        ``status``, ``interpretation``, ``from``/``to`` (UTC dates)
- ``GET /results/{upload_id}``          one result
- ``GET /results/{upload_id}/report``   302 to a presigned link of the report PNG, valid one minute
                                        (``{"url": ...}`` instead when the client accepts only JSON:
                                        a page's ``fetch`` cannot read a cross-origin redirect)
- ``GET /``, ``/static/{name}``, ``/config.json``  the worklist page and where it signs in (no data
                                        in them; served without a token)

Sign-in is the authorization code grant with PKCE (RFC 7636, S256; no implicit grant, RFC 9700):
``/config.json`` gives the page the user pool's ``authorizeUrl`` and ``tokenUrl``, the app client's
``clientId`` (a public client, no secret), the ``redirectUri`` registered for it and the ``scope``; the
page makes the verifier, the challenge and the state, and redeems the code at the token endpoint itself,
so no token ever travels in a URL. The one-time code comes back in the page request's query string
(Cognito redirects to ``WorklistUrl?code=...&state=...``): this function serves the page for it but
never reads, uses or logs the code (events are not logged), and the code is worthless without the
verifier the page keeps.

Responses are built from an allow-list of the record's fields (``result_view``): the record holds
no names, patient ids or birth dates, and the accession number stays out as well (the study
reference, which defaults to it, is the hospital's handle for a study). Runs in the zip function
with the ``boneage-core`` layer: nothing here may import numpy, torch, pydicom or Pillow.
"""

from __future__ import annotations

import json
import mimetypes
import re
import urllib.parse
from datetime import date
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError, UnauthorizedError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from boneage.adapters.reports import ReportWriter
from boneage.adapters.store import ResultStore
from boneage.config import HOSPITAL_ID_PATTERN, Settings
from boneage.result import COMPLETED, FAILED, REJECTED
from boneage.upload import PROCESSING, InvalidPageToken, RecordQuery, StoredRecord

HOSPITAL_CLAIM = "custom:hospital_id"
REPORT_LINK_EXPIRY_S = 60           # long enough for the browser to follow the redirect, no longer
REPORT_PNG = "report.png"
STATUSES = frozenset({COMPLETED, REJECTED, FAILED, PROCESSING})
INTERPRETATIONS = frozenset({"delayed", "within_normal_limits", "advanced"})
STATIC_DIR = Path(__file__).resolve().parent / "static"
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_STATIC_NAME = re.compile(r"^[a-z0-9-]+\.(html|css|js|svg)$")
# What a clinician sees of a result; everything else in the record stays in the table.
_RESULT_FIELDS = (
    "reason", "message", "bone_age_months", "bone_age_interval_months", "sex", "chronological_age_months",
    "sds", "sds_interval", "sds_reason", "interpretation", "interpretation_reason", "predicted_adult_height_cm",
    "adult_height_reason", "laterality", "model_version", "demo_model", "study_reference", "modality", "warnings",
)

logger = Logger(service="boneage-results")
tracer = Tracer(service="boneage-results", auto_patch=False)   # no SDK patching: S3 keys in traces
app = APIGatewayHttpResolver()

_store: ResultStore | None = None
_reports: ReportWriter | None = None
_sign_in: dict[str, str] = {}
_csp = ""


def init(store: ResultStore | None = None, reports: ReportWriter | None = None,
         settings: Settings | None = None) -> None:
    """Build (or inject) the table and bucket adapters; called once at module load (Lambda init)."""
    global _store, _reports, _sign_in, _csp
    settings = settings or Settings.from_env()
    _sign_in = sign_in_config(settings)
    _csp = page_csp(_sign_in["tokenUrl"])
    if store is None or reports is None:
        if store is None:
            store = ResultStore(boto3.client("dynamodb", region_name=settings.region), settings.results_table)
        if reports is None:
            # SigV4: objects under SSE-KMS can only be fetched with a SigV4-signed link.
            s3 = boto3.client("s3", region_name=settings.region, config=Config(signature_version="s3v4"))
            reports = ReportWriter(s3, settings.results_bucket, prefix=settings.reports_prefix,
                                   url_expiry_s=REPORT_LINK_EXPIRY_S)
    _store, _reports = store, reports


def sign_in_config(settings: Settings) -> dict[str, str]:
    """What the page needs for the code grant with PKCE (served as ``/config.json``)."""
    domain = settings.worklist_auth_domain
    return {"authorizeUrl": f"{domain}/oauth2/authorize" if domain else "",
            "tokenUrl": f"{domain}/oauth2/token" if domain else "",
            "clientId": settings.worklist_client_id, "redirectUri": settings.worklist_redirect_uri,
            "scope": "openid email"}


def page_csp(token_url: str) -> str:
    """The page's Content-Security-Policy: its own origin only, plus the token endpoint for ``fetch``."""
    parts = urllib.parse.urlsplit(token_url)
    token_origin = f" {parts.scheme}://{parts.netloc}" if parts.scheme in ("https", "http") and parts.netloc else ""
    return (f"default-src 'self'; connect-src 'self'{token_origin}; img-src 'self' https: http: data:; "
            "frame-ancestors 'none'")


def _hospital() -> str:
    """The caller's hospital, from the verified token; a token without one is refused."""
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    hospital = claims.get(HOSPITAL_CLAIM)
    if not isinstance(hospital, str) or not HOSPITAL_ID_PATTERN.match(hospital):
        # The authorizer only lets signed tokens through; one without the claim is no clinician's.
        raise UnauthorizedError("the token names no hospital")
    return hospital


def result_view(record: StoredRecord) -> dict[str, Any]:
    """The record as the API shows it: an allow-list, so a field added to the record stays private."""
    view: dict[str, Any] = {
        "upload_id": record.upload_id, "status": record.status, "created_at": record.created_at,
        "updated_at": record.updated_at, "has_report": REPORT_PNG in record.report_keys,
    }
    result = record.result.as_dict() if record.result is not None else {}
    view.update({name: result.get(name) for name in _RESULT_FIELDS})
    return view


def _set(raw: str | None, allowed: frozenset[str], name: str) -> frozenset[str]:
    values = frozenset(v.strip() for v in (raw or "").split(",") if v.strip())
    if not values <= allowed:
        raise BadRequestError(f"{name} must be among {', '.join(sorted(allowed))}")
    return values


def _day(raw: str | None, name: str, *, end: bool) -> str | None:
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequestError(f"{name} must be a date, YYYY-MM-DD") from exc
    # created_at is "YYYY-mm-ddTHH:MM:SS.ffffffZ", so these bounds take in the whole day.
    return f"{day.isoformat()}T23:59:59.999999Z" if end else f"{day.isoformat()}T00:00:00.000000Z"


def _record(upload_id: str, hospital: str) -> StoredRecord:
    assert _store is not None
    record = _store.read(upload_id) if _UPLOAD_ID.match(upload_id) else None
    if record is None or record.hospital_id != hospital:
        raise NotFoundError("no such result")       # another hospital's record reads as missing
    return record


@app.get("/results")
@tracer.capture_method
def list_results() -> dict[str, Any]:
    hospital = _hospital()
    assert _store is not None
    params = app.current_event.query_string_parameters or {}
    try:
        query = RecordQuery(
            statuses=_set(params.get("status"), STATUSES, "status"),
            interpretations=_set(params.get("interpretation"), INTERPRETATIONS, "interpretation"),
            created_from=_day(params.get("from"), "from", end=False),
            created_to=_day(params.get("to"), "to", end=True),
            limit=int(params.get("limit") or 25),
        )
        page = _store.query_hospital(hospital, query, params.get("next") or None)
    except (InvalidPageToken, ValueError) as exc:
        raise BadRequestError(str(exc)) from exc
    return {"results": [result_view(r) for r in page.records], "next": page.next_token}


@app.get("/results/<upload_id>")
@tracer.capture_method
def get_result(upload_id: str) -> dict[str, Any]:
    return result_view(_record(upload_id, _hospital()))


@app.get("/results/<upload_id>/report")
@tracer.capture_method
def get_report(upload_id: str) -> Response:
    record = _record(upload_id, _hospital())
    key = record.report_keys.get(REPORT_PNG)
    if key is None:
        raise NotFoundError("this result has no report")
    assert _reports is not None
    if app.current_event.headers.get("accept", "").strip() == "application/json":
        return Response(status_code=200, content_type="application/json", headers={"Cache-Control": "no-store"},
                        body=json.dumps({"url": _reports.url(key), "expires_in": REPORT_LINK_EXPIRY_S}))
    return Response(status_code=302, headers={"Location": _reports.url(key), "Cache-Control": "no-store"}, body="")


def _static(name: str) -> Response:
    if not _STATIC_NAME.match(name) or not (STATIC_DIR / name).is_file():
        raise NotFoundError("no such file")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(status_code=200, content_type=content_type, body=(STATIC_DIR / name).read_text(),
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                             # no-referrer: the address the page is opened at never leaves it
                             "Referrer-Policy": "no-referrer", "Content-Security-Policy": _csp})


@app.get("/")
def page() -> Response:
    return _static("index.html")


@app.get("/config.json")
def page_config() -> dict[str, str]:
    return _sign_in


@app.get("/static/<name>")
def static_file(name: str) -> Response:
    return _static(name)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


init()
