"""The results function on moto, with HTTP API v2 events as API Gateway passes them after its JWT
authorizer: hospital scoping, pagination, filters, report links, and what a response may hold."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from boneage.adapters.reports import ReportWriter
from boneage.adapters.store import ResultStore
from boneage.config import Settings
from boneage.devstack.results_api import http_api_event, load_results_app
from boneage.devstack.stack import LambdaContext

from .support import T0, create_table, seed

A, B = "st-mary", "north-gen"
# Loaded at collection, as Lambda's init would: the X-Ray SDK opens its UDP socket on import, before
# unit tests turn sockets off (tracing itself is disabled below, nothing is sent).
APP = load_results_app()


class Api:
    def __init__(self, app: ModuleType, store: ResultStore, s3: Any) -> None:
        self.app, self.store, self.s3 = app, store, s3

    def get(self, path: str, hospital: str | None, *, accept: str = "*/*", claims: dict[str, Any] | None = None
            ) -> tuple[int, dict[str, str], Any]:
        path, _, query = path.partition("?")
        if claims is None and hospital is not None:
            claims = {"sub": "u1", "custom:hospital_id": hospital}
        event = http_api_event("GET", path, query, {"accept": accept, "host": "api"}, claims)
        resp = self.app.handler(event, LambdaContext(function_name="results"))
        body = resp.get("body") or ""
        ctype = (resp.get("headers") or {}).get("Content-Type", "")
        return resp["statusCode"], resp.get("headers") or {}, json.loads(body) if "json" in ctype and body else body


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                 "POWERTOOLS_TRACE_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        create_table(ddb)
        s3.create_bucket(Bucket="results-bucket")
        app = APP
        store = ResultStore(ddb, "results")
        app.init(store, ReportWriter(s3, "results-bucket", url_expiry_s=60),
                 Settings(worklist_auth_domain="https://signin.example", worklist_client_id="client-1",
                          worklist_redirect_uri="https://worklist.example/"))
        yield Api(app, store, s3)


def _seed_two_hospitals(api: Api) -> tuple[list[str], list[str]]:
    a = [seed(api.store, A, i, now=T0 + i).upload_id for i in range(3)]
    b = [seed(api.store, B, 10 + i, now=T0 + i).upload_id for i in range(2)]
    return a, b


def test_a_hospital_lists_only_its_own_results_newest_first(api: Api) -> None:
    a, b = _seed_two_hospitals(api)
    status, _, body = api.get("/results", A)
    assert status == 200
    assert [r["upload_id"] for r in body["results"]] == list(reversed(a))
    status, _, body = api.get("/results", B)
    assert [r["upload_id"] for r in body["results"]] == list(reversed(b))


def test_another_hospitals_result_is_not_found_like_a_missing_one(api: Api) -> None:
    a, b = _seed_two_hospitals(api)
    assert api.get(f"/results/{a[0]}", A)[0] == 200
    for path in (f"/results/{b[0]}", f"/results/{b[0]}/report", "/results/" + "0" * 32, "/results/not-an-id"):
        status, _, body = api.get(path, A)
        assert status == 404, path
    assert api.get(f"/results/{b[0]}", A)[2] == api.get("/results/" + "0" * 32, A)[2]


def test_a_request_without_a_hospital_claim_is_refused(api: Api) -> None:
    _seed_two_hospitals(api)
    assert api.get("/results", None, claims={"sub": "u1"})[0] == 401
    assert api.get("/results", None, claims={"sub": "u1", "custom:hospital_id": "../x"})[0] == 401
    assert api.get("/results", None)[0] == 401          # no authorizer context at all


def test_pagination_returns_every_result_exactly_once(api: Api) -> None:
    ids = {seed(api.store, A, i, now=T0 + i).upload_id for i in range(11)}
    seen: list[str] = []
    url = "/results?limit=4"
    while True:
        status, _, body = api.get(url, A)
        assert status == 200 and len(body["results"]) <= 4
        seen += [r["upload_id"] for r in body["results"]]
        if not body["next"]:
            break
        url = "/results?limit=4&next=" + urllib.parse.quote(body["next"])
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids)


def test_a_page_token_of_another_hospital_is_a_bad_request(api: Api) -> None:
    _seed_two_hospitals(api)
    token = api.get("/results?limit=1", B)[2]["next"]
    status, _, body = api.get("/results?next=" + urllib.parse.quote(token), A)
    assert status == 400


def test_filters_by_status_interpretation_and_dates(api: Api) -> None:
    seed(api.store, A, 0, now=T0, interpretation="delayed", sds=-2.4)
    seed(api.store, A, 1, now=T0 + 86400, status="rejected")
    seed(api.store, A, 2, now=T0 + 2 * 86400)

    def refs(query: str) -> list[str | None]:
        status, _, body = api.get("/results?" + query, A)
        assert status == 200, body
        return [r["study_reference"] or r["reason"] for r in body["results"]]

    assert refs("status=rejected") == ["no_hand_found"]
    assert refs("interpretation=delayed") == [f"ref-{A}-0"]
    assert refs("status=completed") == [f"ref-{A}-2", f"ref-{A}-0"]
    assert refs("from=2026-09-22&to=2026-09-22") == ["no_hand_found"]
    for bad in ("status=bogus", "interpretation=tall", "from=22-09-2026", "limit=0", "limit=x", "next=%%%"):
        assert api.get("/results?" + bad, A)[0] == 400, bad


def test_responses_carry_no_patient_identifiers(api: Api) -> None:
    record = seed(api.store, A, 1, now=T0)
    _, _, one = api.get(f"/results/{record.upload_id}", A)
    _, _, listing = api.get("/results", A)
    for view in (one, listing["results"][0]):
        assert view["bone_age_months"] == 127.0 and view["interpretation"] == "within_normal_limits"
        assert view["demo_model"] is True and view["study_reference"] == f"ref-{A}-1"
        text = json.dumps(view)
        assert "ACC1" not in text and "accession" not in text
        assert not {"patient_name", "patient_id", "birth_date", "key", "bucket", "source"} & set(view)


def test_report_redirects_to_a_short_lived_link_for_the_callers_hospital(api: Api) -> None:
    key = f"reports/{A}/abc/report.png"
    api.s3.put_object(Bucket="results-bucket", Key=key, Body=b"\x89PNG")
    record = seed(api.store, A, 1, now=T0, report_keys={"report.png": key})
    status, headers, _ = api.get(f"/results/{record.upload_id}/report", A)
    assert status == 302
    location = urllib.parse.urlsplit(headers["Location"])
    assert location.path.endswith(key) and "Expires=" in location.query or "X-Amz-Expires=60" in location.query
    status, _, body = api.get(f"/results/{record.upload_id}/report", A, accept="application/json")
    assert status == 200 and body["expires_in"] == 60 and key in body["url"]
    assert api.get(f"/results/{record.upload_id}/report", B)[0] == 404
    without = seed(api.store, A, 2, now=T0)
    assert api.get(f"/results/{without.upload_id}/report", A)[0] == 404


def test_the_page_and_its_sign_in_need_no_token(api: Api) -> None:
    status, headers, body = api.get("/", None)
    assert status == 200 and headers["Content-Type"].startswith("text/html") and "<table" in body
    assert api.get("/static/worklist.js", None)[0] == 200
    assert api.get("/static/../app.py", None)[0] == 404
    # The code grant with PKCE: where to authorize and redeem, for which public client and return address.
    assert api.get("/config.json", None)[2] == {
        "authorizeUrl": "https://signin.example/oauth2/authorize", "tokenUrl": "https://signin.example/oauth2/token",
        "clientId": "client-1", "redirectUri": "https://worklist.example/", "scope": "openid email"}
    # The page may fetch only its own origin and the token endpoint's, and sends no Referer (the address
    # it is opened at carries the one-time code for a moment).
    csp = headers["Content-Security-Policy"]
    assert "connect-src 'self' https://signin.example;" in csp and "default-src 'self'" in csp
    assert headers["Referrer-Policy"] == "no-referrer"
