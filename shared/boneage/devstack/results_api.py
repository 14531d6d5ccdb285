"""The results API and worklist page on loopback: the same function code behind a stand-in for API Gateway.

``ResultsServer`` is a stdlib ``http.server`` on 127.0.0.1 that does what the deployed HTTP API does
in front of ``functions/results/app.py``:

- checks the ``Authorization: Bearer`` ID token as the JWT authorizer would (RS256 signature, issuer,
  audience, expiry, not-before) and answers 401 itself when it fails, before the function runs;
- turns the request into an HTTP API payload v2 event with the token's claims (as strings, like API
  Gateway) in ``requestContext.authorizer.jwt.claims``, calls the handler, and writes its response;
- leaves the page routes (``/``, ``/static/*``, ``/config.json``) open, as the template does.

``TokenIssuer`` stands in for the Cognito user pool: an RSA key generated at start, ID tokens with
``custom:hospital_id``. ``/oauth2/authorize`` and ``/oauth2/token`` play the hosted UI and the token
endpoint (``boneage.devstack.hosted_ui``): the authorization code grant with PKCE, as the page uses
Cognito's, so the page signs in through one code path here and in AWS; the sign-in form asks for a
hospital id instead of a password. Loopback only: anyone who can reach the port can mint a token for
any hospital.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from .hosted_ui import AUTHORIZE_PATH, TOKEN_PATH, LocalHostedUI, sign_in
from .stack import ROOT, LambdaContext

RESULTS_APP = ROOT / "functions" / "results" / "app.py"
MODULE_NAME = "results_app"     # not "app": the assessment function's module may be loaded beside it
ISSUER = "https://cognito-idp.local/boneage-local-clinicians"
AUDIENCE = "boneage-local-worklist"
OPEN_PATHS = ("/", "/config.json")
OPEN_PREFIXES = ("/static/",)
MAX_BODY = 16 * 1024            # the token endpoint's form is a few hundred bytes


def load_results_app(path: Path = RESULTS_APP) -> ModuleType:
    """The results function's module, imported once from its file (as Lambda imports ``app``)."""
    module = sys.modules.get(MODULE_NAME)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no results function at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MODULE_NAME]
        raise
    return module


class TokenError(Exception):
    """A token the authorizer would refuse (the reason is for the log, the caller only sees 401)."""


@dataclass
class TokenIssuer:
    """A local user pool: mints RS256 ID tokens and verifies them the way the JWT authorizer does."""

    issuer: str = ISSUER
    audience: str = AUDIENCE
    _key: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        if self._key is None:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def mint(self, hospital_id: str, *, ttl_s: int = 3600, now: float | None = None,
             **claims: Any) -> str:
        import jwt

        now = time.time() if now is None else now
        payload = {"iss": self.issuer, "aud": self.audience, "sub": str(uuid.uuid4()), "token_use": "id",
                   "iat": int(now), "nbf": int(now), "exp": int(now) + ttl_s, "custom:hospital_id": hospital_id,
                   **claims}
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": "local"})

    def verify(self, token: str) -> dict[str, Any]:
        import jwt

        try:
            return jwt.decode(token, self._key.public_key(), algorithms=["RS256"], audience=self.audience,
                              issuer=self.issuer, options={"require": ["exp", "iss", "aud"]}, leeway=0)
        except jwt.PyJWTError as exc:
            raise TokenError(type(exc).__name__) from exc


def http_api_event(method: str, raw_path: str, query: str, headers: Mapping[str, str],
                   claims: Mapping[str, Any] | None) -> dict[str, Any]:
    """An HTTP API payload format 2.0 event, as API Gateway hands one to the function."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    now = time.time()
    context: dict[str, Any] = {
        "accountId": "123456789012", "apiId": "local", "domainName": headers.get("host", "localhost"),
        "domainPrefix": "local", "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
        "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                 "userAgent": headers.get("user-agent", "")},
    }
    if claims is not None:
        # API Gateway passes claims on as strings (lists as "[a b]"); the function must cope with that.
        context["authorizer"] = {"jwt": {"claims": {k: v if isinstance(v, str) else json.dumps(v)
                                                    for k, v in claims.items()}, "scopes": None}}
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "queryStringParameters": {k: ",".join(v) for k, v in params.items()} or None,
        "requestContext": context, "isBase64Encoded": False, "body": None,
    }


class ResultsServer:
    """The API and the page on ``http://127.0.0.1:<port>/``; ``start(port)`` / ``stop()``.

    ``env`` is the function's environment (``LocalStack.handler_env`` for the emulator's table and
    bucket); the function module is initialised with it, as Lambda would at cold start."""

    def __init__(self, env: Mapping[str, str], issuer: TokenIssuer | None = None) -> None:
        self.env = dict(env)
        self.issuer = issuer or TokenIssuer()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.app: ModuleType | None = None
        self.hosted_ui: LocalHostedUI | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        assert self._httpd is not None, "not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def sign_in(self, hospital_id: str) -> str:
        """An ID token of ``hospital_id`` got through the code grant with PKCE, as the page gets one."""
        return sign_in(self.url, hospital_id)

    def start(self, port: int = 0) -> ResultsServer:
        from boneage.config import Settings

        from .stack import _patched_env

        self._stopped = False
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(self))
        # The page returns to its own address; the hosted UI stand-in is on the same origin.
        self.hosted_ui = LocalHostedUI(self.issuer.audience, self.url, self.issuer.mint)
        env = {**self.env, "WORKLIST_AUTH_DOMAIN": self.url.rstrip("/"), "WORKLIST_CLIENT_ID": self.issuer.audience,
               "WORKLIST_REDIRECT_URI": self.url}
        try:
            with _patched_env(env):
                self.app = load_results_app()
                self.app.init(settings=Settings.from_env(env))   # clients built inside: endpoints from env
        except BaseException:
            self._httpd.server_close()      # bound first (its address is the redirect URI): let the port go
            self._httpd = None
            raise
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="results-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        # A request the browser left mid-way may still be in the function: wait for it, and let none
        # start after this (its clients point at an emulator that is going away).
        with self._lock:
            self._stopped = True

    def __enter__(self) -> ResultsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def respond(self, method: str, target: str, headers: Mapping[str, str],
                body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """One request through the authorizer and the function, or to the hosted UI stand-in:
        (status, headers, body)."""
        parts = urllib.parse.urlsplit(target)
        path = parts.path or "/"
        assert self.hosted_ui is not None, "not started"
        if path == AUTHORIZE_PATH:
            return self.hosted_ui.authorize(parts.query) if method == "GET" else _not_allowed("GET")
        if path == TOKEN_PATH:
            if method != "POST":
                return _not_allowed("POST")
            content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
            return self.hosted_ui.token(content_type, body)
        if method != "GET":
            return _not_allowed("GET")
        claims = None
        if not (path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)):
            auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
            scheme, _, token = auth.partition(" ")
            try:
                if scheme.lower() != "bearer" or not token:
                    raise TokenError("no bearer token")
                claims = self.issuer.verify(token.strip())
            except TokenError:
                # API Gateway's own answer: the function never sees the request.
                return 401, {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"}, \
                    b'{"message":"Unauthorized"}'
        event = http_api_event(method, path, parts.query, headers, claims)
        assert self.app is not None
        with self._lock:
            if self._stopped:
                return 503, {"Content-Type": "text/plain"}, b"stopped"
            # No environment patch here: the module built its clients (endpoints, credentials) at init.
            # os.environ is the whole process's, and a request thread that saved and restored it could
            # put back an endpoint a test (or ``make local``) had already taken away.
            response = self.app.handler(event, LambdaContext(function_name="boneage-local-results"))
        out_headers = {k: str(v) for k, v in (response.get("headers") or {}).items()}
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
        return int(response["statusCode"]), out_headers, data


class WorklistService:
    """``make local``'s results API and worklist: a ``LocalService`` (``boneage.devstack.local``) that
    serves the deployment's table and bucket on ``http://127.0.0.1:<port>/``, with a sign-in link per
    subscribed hospital."""

    name = "worklist"

    def __init__(self, port: int = 8765) -> None:
        self.port = port
        self.server: ResultsServer | None = None

    def start(self, deployment: Any) -> dict[str, Any]:
        self.server = ResultsServer(deployment.stack.handler_env).start(self.port)
        # The page signs in with the code grant: open the URL, press Sign in, type one of these.
        return {"url": self.server.url, "sign_in_hospitals": sorted(deployment.inboxes)}

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _not_allowed(allowed: str) -> tuple[int, dict[str, str], bytes]:
    return 405, {"Allow": allowed, "Content-Type": "text/plain"}, b"method not allowed"


def _handler_class(server: ResultsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._answer("GET", b"")

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self._write(400, {"Content-Type": "text/plain"}, b"bad Content-Length", close=True)
            elif length > MAX_BODY:
                self._write(413, {"Content-Type": "text/plain"}, b"request too large", close=True)
            else:
                self._answer("POST", self.rfile.read(length))

        def _answer(self, method: str, request_body: bytes) -> None:
            try:
                status, headers, body = server.respond(method, self.path, dict(self.headers.items()), request_body)
            except Exception:   # the function's own errors come back as 500 responses; this is ours
                status, headers, body = 502, {"Content-Type": "text/plain"}, b"local gateway error"
            self._write(status, headers, body)

        def _write(self, status: int, headers: Mapping[str, str], body: bytes, close: bool = False) -> None:
            if close:           # the request's body was not read: the connection cannot carry another
                self.close_connection = True
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:    # quiet: paths may carry tokens
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    """``python -m boneage.devstack.results_api``: the emulator's stack and the worklist on loopback,
    with a ready-made token per hospital for curl (uploads are assessed by ``make local``'s poller, not here)."""
    import argparse

    from .stack import LocalStack

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--hospital", action="append", default=[], help="print a token of it for curl")
    args = parser.parse_args(argv)
    with LocalStack.start() as stack, ResultsServer(stack.handler_env).start(args.port) as server:
        print(f"worklist: {server.url}")
        print("  press Sign in on the page and type a hospital id on the local sign-in form")
        for hospital in args.hospital or ["st-mary", "north-gen"]:
            print(f"  {hospital}: curl -H 'Authorization: Bearer {server.issuer.mint(hospital)}' {server.url}results")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
