"""The local hosted UI's code grant with PKCE (``boneage.devstack.hosted_ui``): a code is bound to the
client, the redirect URI and the S256 challenge, redeemed once, and only with the right verifier."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.parse

import pytest

from boneage.devstack.hosted_ui import CODE_TTL_S, LocalHostedUI, s256
from boneage.devstack.results_api import TokenIssuer

CLIENT, REDIRECT, HOSPITAL = "worklist-client", "http://127.0.0.1:8765/", "st-mary"
FORM = "application/x-www-form-urlencoded"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    return TokenIssuer(audience=CLIENT)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ui(issuer: TokenIssuer, clock: Clock) -> LocalHostedUI:
    return LocalHostedUI(CLIENT, REDIRECT, issuer.mint, clock=clock)


def _authorize(ui: LocalHostedUI, verifier: str, **overrides: str) -> tuple[int, dict[str, str], bytes]:
    params = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT, "scope": "openid email",
              "state": "s-123", "code_challenge": s256(verifier), "code_challenge_method": "S256",
              "hospital": HOSPITAL, **overrides}
    return ui.authorize(urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}))


def _code(ui: LocalHostedUI, verifier: str) -> str:
    status, headers, _ = _authorize(ui, verifier)
    assert status == 302
    location = headers["Location"]
    assert location.startswith(REDIRECT + "?") and "#" not in location and "token" not in location
    back = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert back["state"] == ["s-123"]
    return back["code"][0]


def _redeem(ui: LocalHostedUI, code: str, verifier: str, **overrides: str) -> tuple[int, dict]:
    form = {"grant_type": "authorization_code", "client_id": CLIENT, "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier, **overrides}
    status, _, body = ui.token(FORM, urllib.parse.urlencode(form).encode())
    return status, json.loads(body)


def test_s256_is_rfc_7636s_example() -> None:
    # RFC 7636 appendix B: the verifier and the challenge it gives.
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    digest = hashlib.sha256(b"abc").digest()
    assert s256("abc") == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_the_right_verifier_redeems_the_code_for_an_id_token_of_the_hospital(ui: LocalHostedUI,
                                                                             issuer: TokenIssuer) -> None:
    verifier = secrets.token_urlsafe(48)
    status, body = _redeem(ui, _code(ui, verifier), verifier)
    assert status == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 3600
    claims = issuer.verify(body["id_token"])
    assert claims["custom:hospital_id"] == HOSPITAL and claims["aud"] == CLIENT and claims["token_use"] == "id"


def test_a_wrong_verifier_is_refused_and_spends_the_code(ui: LocalHostedUI) -> None:
    verifier = secrets.token_urlsafe(48)
    code = _code(ui, verifier)
    assert _redeem(ui, code, secrets.token_urlsafe(48)) == (400, {"error": "invalid_grant"})
    assert _redeem(ui, code, verifier) == (400, {"error": "invalid_grant"})     # no second try


def test_a_code_is_redeemed_once(ui: LocalHostedUI) -> None:
    verifier = secrets.token_urlsafe(48)
    code = _code(ui, verifier)
    assert _redeem(ui, code, verifier)[0] == 200
    assert _redeem(ui, code, verifier) == (400, {"error": "invalid_grant"})


def test_another_redirect_uri_at_the_token_endpoint_is_refused(ui: LocalHostedUI) -> None:
    verifier = secrets.token_urlsafe(48)
    code = _code(ui, verifier)
    assert _redeem(ui, code, verifier, redirect_uri="http://127.0.0.1:9999/") == (400, {"error": "invalid_grant"})


def test_an_expired_code_is_refused(ui: LocalHostedUI, clock: Clock) -> None:
    verifier = secrets.token_urlsafe(48)
    code = _code(ui, verifier)
    clock.now += CODE_TTL_S
    assert _redeem(ui, code, verifier) == (400, {"error": "invalid_grant"})


@pytest.mark.parametrize(("overrides", "answer"), [
    ({"client_id": "another"}, (401, {"error": "invalid_client"})),
    ({"grant_type": "implicit"}, (400, {"error": "unsupported_grant_type"})),
    ({"code_verifier": "short"}, (400, {"error": "invalid_grant"})),
])
def test_the_token_endpoint_refuses_a_malformed_redemption(ui: LocalHostedUI, overrides: dict[str, str],
                                                           answer: tuple[int, dict]) -> None:
    verifier = secrets.token_urlsafe(48)
    assert _redeem(ui, _code(ui, verifier), verifier, **overrides) == answer


def test_the_token_endpoint_takes_only_a_form(ui: LocalHostedUI) -> None:
    verifier = secrets.token_urlsafe(48)
    body = json.dumps({"grant_type": "authorization_code", "client_id": CLIENT, "code": _code(ui, verifier),
                       "redirect_uri": REDIRECT, "code_verifier": verifier}).encode()
    assert ui.token("application/json", body)[0] == 400


@pytest.mark.parametrize("overrides", [{"client_id": "another"}, {"redirect_uri": "https://evil.example/"}])
def test_an_unknown_client_or_redirect_uri_is_answered_here_never_redirected(ui: LocalHostedUI,
                                                                             overrides: dict[str, str]) -> None:
    status, headers, _ = _authorize(ui, secrets.token_urlsafe(48), **overrides)
    assert status == 400 and "Location" not in headers


@pytest.mark.parametrize(("overrides", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),          # no implicit grant
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": None}, "invalid_request"),                      # PKCE is required
])
def test_an_authorize_request_without_s256_pkce_gets_an_error_and_no_code(ui: LocalHostedUI,
                                                                         overrides: dict[str, str | None],
                                                                         error: str) -> None:
    status, headers, _ = _authorize(ui, secrets.token_urlsafe(48), **overrides)  # type: ignore[arg-type]
    back = urllib.parse.parse_qs(urllib.parse.urlsplit(headers["Location"]).query)
    assert status == 302 and back == {"error": [error], "state": ["s-123"]}


def test_without_a_hospital_the_sign_in_form_carries_the_request_on(ui: LocalHostedUI) -> None:
    status, headers, body = _authorize(ui, "v" * 43, hospital=None, state='"><script>x</script>')  # type: ignore[arg-type]
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert 'name="code_challenge"' in page and 'id="hospital"' in page
    assert "<script>" not in page                                        # echoed values are escaped
    assert _authorize(ui, "v" * 43, hospital="Not A Hospital")[0] == 200  # asked again, no code
