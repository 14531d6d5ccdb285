"""A loopback stand-in for Cognito's hosted UI and token endpoint: the authorization code grant with PKCE.

The worklist signs in the way RFC 9700 asks of a browser client (no implicit grant): it sends the
clinician to ``/oauth2/authorize`` with an S256 ``code_challenge`` and a ``state``, gets a one-time
``code`` back in the query of its own address, and redeems it with the ``code_verifier`` at
``/oauth2/token`` (RFC 7636). ``LocalHostedUI`` plays both ends for ``ResultsServer`` so the page runs
one code path locally and in AWS:

- ``authorize(query)``: checks the request as Cognito does (``response_type=code``, the app client, the
  registered redirect URI, ``code_challenge_method=S256`` with a well-formed challenge). Without a
  ``hospital`` it answers the sign-in form (the "hosted page": type a hospital id, no password, since
  anyone on the loopback port may mint tokens); with one it issues a code bound to the client, the
  redirect URI and the challenge, valid five minutes, and redirects to ``redirect_uri?code=&state=``.
- ``token(form)``: ``grant_type=authorization_code``, ``client_id``, ``code``, ``redirect_uri``,
  ``code_verifier``; a code is spent on its first redemption, right or wrong (RFC 6749 section 4.1.2),
  so a wrong verifier cannot be retried against it. Success: ``{"id_token", "token_type",
  "expires_in"}`` with the same ID token the JWT authorizer stand-in checks; refusals are OAuth's
  ``{"error": ...}`` with 400.

Errors before the redirect URI is trusted (unknown client, unregistered redirect URI) are answered here
with 400 and never redirected, as OAuth requires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from boneage.config import HOSPITAL_ID_PATTERN

AUTHORIZE_PATH = "/oauth2/authorize"
TOKEN_PATH = "/oauth2/token"
CODE_TTL_S = 300                        # Cognito's authorization codes live five minutes
TOKEN_TTL_S = 3600                      # the worklist client's IdTokenValidity: one hour
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")           # base64url of a SHA-256 digest, unpadded
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")      # RFC 7636 section 4.1

Reply = tuple[int, dict[str, str], bytes]


def s256(verifier: str) -> str:
    """The S256 code challenge of a verifier: base64url(SHA-256(ascii(verifier))), no padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class _Grant:
    hospital_id: str
    client_id: str
    redirect_uri: str
    challenge: str
    expires_at: float


class LocalHostedUI:
    """The code grant with PKCE for one app client (``client_id``) and one registered ``redirect_uri``;
    ``mint(hospital_id)`` makes the ID token a redeemed code is worth."""

    def __init__(self, client_id: str, redirect_uri: str, mint: Callable[[str], str],
                 clock: Callable[[], float] = time.time) -> None:
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self._mint = mint
        self._clock = clock
        self._codes: dict[str, _Grant] = {}
        self._lock = threading.Lock()

    def authorize(self, query: str) -> Reply:
        params = {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
        if params.get("client_id") != self.client_id:
            return _text(400, "unknown client_id")
        if params.get("redirect_uri") != self.redirect_uri:
            return _text(400, "redirect_uri is not one of this client's callback URLs")
        state = params.get("state", "")
        if params.get("response_type") != "code":
            return self._redirect_error("unsupported_response_type", state)
        if params.get("code_challenge_method") != "S256" or not _CHALLENGE.match(params.get("code_challenge", "")):
            return self._redirect_error("invalid_request", state)      # PKCE is required, S256 only
        hospital = params.get("hospital", "").strip()
        if not hospital:
            return self._form(params)
        if not HOSPITAL_ID_PATTERN.match(hospital):
            return self._form(params, error="That is not a hospital id (lower case letters, digits and dashes).")
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._sweep()
            self._codes[code] = _Grant(hospital, self.client_id, self.redirect_uri, params["code_challenge"],
                                       self._clock() + CODE_TTL_S)
        return 302, {"Location": _with_query(self.redirect_uri, code=code, state=state),
                     "Cache-Control": "no-store"}, b""

    def token(self, content_type: str, body: bytes) -> Reply:
        if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            return _oauth_error("invalid_request")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("ascii", "replace")).items()}
        if form.get("grant_type") != "authorization_code":
            return _oauth_error("unsupported_grant_type")
        if form.get("client_id") != self.client_id:
            return _oauth_error("invalid_client", 401)
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)      # spent now, whatever follows
        verifier = form.get("code_verifier", "")
        if (grant is None or grant.expires_at <= self._clock() or grant.client_id != form["client_id"]
                or grant.redirect_uri != form.get("redirect_uri") or not _VERIFIER.match(verifier)
                or not hmac.compare_digest(s256(verifier), grant.challenge)):
            return _oauth_error("invalid_grant")
        body_out = {"id_token": self._mint(grant.hospital_id), "token_type": "Bearer", "expires_in": TOKEN_TTL_S}
        return 200, {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}, \
            json.dumps(body_out).encode()

    def _sweep(self) -> None:
        now = self._clock()
        for code in [c for c, g in self._codes.items() if g.expires_at <= now]:
            del self._codes[code]

    def _redirect_error(self, error: str, state: str) -> Reply:
        return 302, {"Location": _with_query(self.redirect_uri, error=error, state=state)}, b""

    def _form(self, params: Mapping[str, str], error: str = "") -> Reply:
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in params.items() if k != "hospital")
        note = f'<p role="alert">{html.escape(error)}</p>' if error else ""
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Local sign-in</title></head><body>'
            "<h1>Local sign-in</h1><p>This stands in for Cognito's hosted page on loopback: the ID token "
            "names the hospital you type here.</p>" + note +
            f'<form method="get" action="{AUTHORIZE_PATH}">{hidden}'
            '<label>Hospital id <input id="hospital" name="hospital" autocomplete="off" required></label> '
            '<button type="submit" id="local-sign-in">Sign in</button></form></body></html>')
        return 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                     "Content-Security-Policy": "default-src 'none'; form-action 'self'"}, page.encode()


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)


def _text(status: int, message: str) -> Reply:
    return status, {"Content-Type": "text/plain; charset=utf-8"}, message.encode()


def _oauth_error(error: str, status: int = 400) -> Reply:
    return status, {"Content-Type": "application/json", "Cache-Control": "no-store"}, \
        json.dumps({"error": error}).encode()


def sign_in(worklist_url: str, hospital_id: str, timeout: float = 30) -> str:
    """The ID token a clinician of ``hospital_id`` gets from the local worklist, over HTTP the way the
    page does it (its ``/config.json``, the authorize redirect, the code redeemed with the verifier):
    for scripts and tests that need a token from a running ``make local``."""
    import urllib.error
    import urllib.request

    class _Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    base = worklist_url.rstrip("/")
    with urllib.request.urlopen(base + "/config.json", timeout=timeout) as response:
        config = json.loads(response.read())
    verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": config["clientId"], "redirect_uri": config["redirectUri"],
        "scope": config["scope"], "state": state, "code_challenge": s256(verifier),
        "code_challenge_method": "S256", "hospital": hospital_id})
    authorize = urllib.parse.urljoin(base + "/", config["authorizeUrl"])
    try:
        urllib.request.build_opener(_Stay).open(f"{authorize}?{query}", timeout=timeout)
        raise RuntimeError("the local sign-in did not redirect")
    except urllib.error.HTTPError as redirect:
        back = urllib.parse.parse_qs(urllib.parse.urlsplit(redirect.headers.get("Location", "")).query)
    if back.get("state") != [state] or "code" not in back:
        raise RuntimeError(f"the local sign-in refused: {back.get('error', ['no code'])[0]}")
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "client_id": config["clientId"],
                                   "code": back["code"][0], "redirect_uri": config["redirectUri"],
                                   "code_verifier": verifier}).encode()
    request = urllib.request.Request(urllib.parse.urljoin(base + "/", config["tokenUrl"]), data=form,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return str(json.loads(response.read())["id_token"])
