"""The results API served on loopback by ``boneage.devstack.ResultsServer`` against the emulator's
table and bucket: tokens are checked as API Gateway's JWT authorizer would, and each hospital sees
only its own results, over real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from boneage.adapters.store import ResultStore
from boneage.devstack import LocalStack
from boneage.devstack.hosted_ui import s256
from boneage.devstack.results_api import ResultsServer, TokenIssuer
from boneage.result import COMPLETED, AssessmentResult
from boneage.upload import Upload

pytestmark = pytest.mark.integration

A, B = "it-api-a", "it-api-b"


@pytest.fixture(scope="module")
def server(stack: LocalStack) -> Iterator[ResultsServer]:
    with ResultsServer(stack.handler_env).start() as s:
        yield s


@pytest.fixture(scope="module")
def seeded(stack: LocalStack) -> dict[str, list[str]]:
    store = ResultStore(stack.client("dynamodb"), stack.outputs["ResultsTableName"])
    ids: dict[str, list[str]] = {A: [], B: []}
    now = time.time()
    for hospital, count in ((A, 7), (B, 2)):
        for i in range(count):
            upload = Upload(bucket="in", key=f"incoming/{hospital}/{i}.png", version_id=f"v{i}")
            claim = store.claim(upload, hospital, now=now + i, lease_seconds=60)
            result = AssessmentResult(source="x", status=COMPLETED, bone_age_months=100.0 + i, sds=0.1,
                                      interpretation="within_normal_limits", study_reference=f"{hospital}-{i}")
            assert store.finish(claim, result, now=now + i) is not None
            ids[hospital].append(upload.upload_id)
    return ids


def _get(server: ResultsServer, path: str, token: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(server.url.rstrip("/") + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_token_of_hospital_a_lists_only_a(server: ResultsServer, seeded: dict[str, list[str]]) -> None:
    status, body = _get(server, "/results?limit=100", server.issuer.mint(A))
    assert status == 200
    assert {r["upload_id"] for r in body["results"]} == set(seeded[A])


def test_requests_neither_need_nor_touch_the_process_environment(server: ResultsServer, seeded: dict[str, list[str]],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The function's clients were built at init, as Lambda's are: with the emulator's endpoint gone from
    # os.environ (a test ending while the page still fetches), a request still reaches the table and
    # puts nothing back into the environment another test would inherit.
    for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    before = dict(os.environ)
    status, body = _get(server, "/results?limit=100", server.issuer.mint(A))
    assert status == 200 and {r["upload_id"] for r in body["results"]} == set(seeded[A])
    assert dict(os.environ) == before


def test_b_ids_are_not_found_for_a(server: ResultsServer, seeded: dict[str, list[str]]) -> None:
    token = server.issuer.mint(A)
    for upload_id in seeded[B]:
        assert _get(server, f"/results/{upload_id}", token)[0] == 404
        assert _get(server, f"/results/{upload_id}/report", token)[0] == 404
    assert _get(server, f"/results/{seeded[B][0]}", server.issuer.mint(B))[0] == 200


@pytest.mark.parametrize("case", ["missing", "not bearer", "expired", "forged", "other issuer", "other audience",
                                  "garbage", "not yet valid"])
def test_a_token_the_authorizer_would_refuse_gives_401(server: ResultsServer, seeded: dict[str, list[str]],
                                                       case: str) -> None:
    stranger = TokenIssuer()             # same issuer and audience, its own key: a forged signature
    tokens: dict[str, str | None] = {
        "missing": None,
        "not bearer": "",
        "expired": server.issuer.mint(A, ttl_s=-1),
        "forged": stranger.mint(A),
        "other issuer": TokenIssuer(issuer="https://evil.example", _key=server.issuer._key).mint(A),
        "other audience": TokenIssuer(audience="another-client", _key=server.issuer._key).mint(A),
        "garbage": "a.b.c",
        "not yet valid": server.issuer.mint(A, nbf=int(time.time()) + 600),
    }
    path = f"/results/{seeded[A][0]}"
    request = urllib.request.Request(server.url.rstrip("/") + path)
    if case == "not bearer":
        request.add_header("Authorization", "Basic dXNlcjpwYXNz")
    elif tokens[case] is not None:
        request.add_header("Authorization", f"Bearer {tokens[case]}")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 401


def test_pages_over_http_hold_every_result_once(server: ResultsServer, seeded: dict[str, list[str]]) -> None:
    token, seen, path = server.issuer.mint(A), [], "/results?limit=3"
    while True:
        status, body = _get(server, path, token)
        assert status == 200
        seen += [r["upload_id"] for r in body["results"]]
        if not body["next"]:
            break
        path = "/results?limit=3&next=" + urllib.parse.quote(body["next"])
    assert sorted(seen) == sorted(seeded[A])


def test_local_sign_in_is_the_code_grant_with_pkce_over_http(server: ResultsServer) -> None:
    """The page's path over real HTTP: /config.json, the authorize redirect (a code, no token), and the
    token endpoint's POST; a token comes back only in the POST's body."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    status, config = _get(server, "/config.json", None)
    assert status == 200 and config["redirectUri"] == server.url
    verifier = "v" * 64
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": config["clientId"], "redirect_uri": config["redirectUri"],
        "scope": config["scope"], "state": "st", "code_challenge": s256(verifier), "code_challenge_method": "S256",
        "hospital": A})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.build_opener(NoRedirect).open(f"{config['authorizeUrl']}?{query}", timeout=30)
    location = caught.value.headers["Location"]
    back = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert location.startswith(server.url + "?") and "#" not in location and set(back) == {"code", "state"}

    def redeem(code_verifier: str) -> tuple[int, Any]:
        form = urllib.parse.urlencode({"grant_type": "authorization_code", "client_id": config["clientId"],
                                       "code": back["code"][0], "redirect_uri": config["redirectUri"],
                                       "code_verifier": code_verifier}).encode()
        request = urllib.request.Request(config["tokenUrl"], data=form,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, body = redeem(verifier)
    assert status == 200 and server.issuer.verify(body["id_token"])["custom:hospital_id"] == A
    assert redeem(verifier) == (400, {"error": "invalid_grant"})          # the code was spent
    token = server.sign_in(B)                                             # the helper tests and scripts use
    assert _get(server, "/results?limit=100", token)[0] == 200


@pytest.mark.parametrize("length", ["-1", "twelve"])
def test_a_malformed_content_length_gets_400_not_a_hang(server: ResultsServer, length: str) -> None:

    url = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.putrequest("POST", "/oauth2/token")
    connection.putheader("Content-Length", length)
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, response.read()) == (400, b"bad Content-Length")
    connection.close()
