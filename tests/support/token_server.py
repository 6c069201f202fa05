"""A real OAuth2 / GitHub / Entra / STS token server and protected APIs on loopback (aiohttp).

Runs in its own thread like ``upstream.py``. Routes:

- ``POST /token``: ``client_credentials`` (client_secret_basic or client_secret_post),
  ``refresh_token`` with rotation (a used refresh token is dead; reusing it revokes the family),
  and the RFC 7523 ``jwt-bearer`` grant (RS256 assertion checked for signature, iss, aud, exp).
- ``POST /{tenant}/oauth2/v2.0/token``: Entra-style client credentials with ``client_secret`` or
  a ``client_assertion`` (a JWT signed by the "cluster" key, audience api://AzureADTokenExchange).
- ``POST /app/installations/{id}/access_tokens``: GitHub-style; verifies the RS256 app JWT.
- ``POST /sts``: AWS STS ``AssumeRoleWithWebIdentity`` answering the real XML shape.
- ``* /api/...``: a protected API that accepts only live (issued, unexpired, unrevoked) bearer
  tokens; ``* /aws/...``: one that accepts only valid SigV4 signatures, recomputed with botocore.

Every token request is recorded; ``fail_next`` makes the next token requests answer 503.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import math
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any
from urllib.parse import unquote_plus

import jwt
from aiohttp import web
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.threaded_app import serve_in_thread

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AZURE_AUDIENCE = "api://AzureADTokenExchange"
STS_AUDIENCE = "sts.amazonaws.com"


@dataclass
class TokenRequest:
    route: str  # "token" | "azure" | "github" | "sts"
    grant: str
    client: str
    auth_method: str  # "basic" | "post" | "assertion" | "jwt" | "none"
    form: dict[str, str]
    at: float


@dataclass
class Issued:
    expires: float
    subject: str
    revoked: bool = False


@dataclass
class TokenServer:
    url: str = ""
    lifetime: float = 60.0
    sts_lifetime: float = 3600.0
    #: client_id -> client_secret
    clients: dict[str, str] = field(default_factory=dict)
    #: jwt-bearer: issuer (service-account e-mail) -> PEM public key
    jwt_issuers: dict[str, bytes] = field(default_factory=dict)
    #: GitHub: app id -> PEM public key; installation ids that exist
    github_apps: dict[str, bytes] = field(default_factory=dict)
    installations: set[str] = field(default_factory=set)
    #: the "cluster" key that signs federated / web-identity tokens
    cluster_public_key: bytes = b""
    #: AWS: access key id -> (secret, session token or "", expires)
    aws_keys: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    tokens: dict[str, Issued] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # live refresh token -> client
    used_refresh_tokens: set[str] = field(default_factory=set)
    token_requests: list[TokenRequest] = field(default_factory=list)
    api_calls: list[tuple[str, int]] = field(default_factory=list)  # (path, status)
    fail_next: int = 0
    delay: float = 0.0
    loop: asyncio.AbstractEventLoop | None = None

    # -- test controls ------------------------------------------------------------------------

    def reset(self) -> None:
        self.lifetime, self.sts_lifetime, self.fail_next, self.delay = 60.0, 3600.0, 0, 0.0
        for store in (self.tokens, self.refresh_tokens, self.used_refresh_tokens):
            store.clear()
        self.token_requests.clear()
        self.api_calls.clear()
        self.aws_keys = {k: v for k, v in self.aws_keys.items() if not v[1]}  # keep static keys

    def requests_for(self, route: str) -> list[TokenRequest]:
        return [r for r in self.token_requests if r.route == route]

    def issue_refresh_token(self, client: str) -> str:
        token = "rt-" + secrets.token_urlsafe(16)
        self.refresh_tokens[token] = client
        return token

    def revoke(self, token: str) -> None:
        self.tokens[token].revoked = True

    def revoke_all(self) -> None:
        for issued in self.tokens.values():
            issued.revoked = True

    def live(self, token: str) -> bool:
        issued = self.tokens.get(token)
        return issued is not None and not issued.revoked and time.time() < issued.expires

    # -- issuing ------------------------------------------------------------------------------

    def _access_token(self, subject: str) -> dict[str, Any]:
        token = "at-" + secrets.token_urlsafe(24)
        self.tokens[token] = Issued(time.time() + self.lifetime, subject)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}


def _oauth_error(code: str, status: int = 400) -> web.Response:
    return web.json_response({"error": code, "error_description": f"{code} (test)"}, status=status)


def _client_auth(request: web.Request, form: dict[str, str]) -> tuple[str, str, str]:
    """(client_id, secret, method) from Basic auth or the form."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        raw = base64.b64decode(header[6:]).decode()
        cid, _, secret = raw.partition(":")
        return unquote_plus(cid), unquote_plus(secret), "basic"
    if "client_secret" in form:
        return form.get("client_id", ""), form["client_secret"], "post"
    return form.get("client_id", ""), "", "none"


def _app(state: TokenServer) -> web.Application:
    async def gate(route: str, grant: str, client: str, method: str, form: dict[str, str]) -> bool:
        state.token_requests.append(TokenRequest(route, grant, client, method, form, time.time()))
        if state.delay:
            await asyncio.sleep(state.delay)
        if state.fail_next > 0:
            state.fail_next -= 1
            return False
        return True

    async def token(request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        grant = form.get("grant_type", "")
        client, secret, method = _client_auth(request, form)
        if grant == JWT_BEARER:
            method = "jwt"
        if not await gate("token", grant, client, method, form):
            return _oauth_error("temporarily_unavailable", 503)
        if grant == "client_credentials":
            if state.clients.get(client) != secret or not secret:
                return _oauth_error("invalid_client", 401)
            body = state._access_token(client)
            if "scope" in form:
                body["scope"] = form["scope"]
            return web.json_response(body)
        if grant == "refresh_token":
            if client not in state.clients or (secret and state.clients[client] != secret):
                return _oauth_error("invalid_client", 401)
            old = form.get("refresh_token", "")
            if old in state.used_refresh_tokens:  # reuse: RFC 9700 says revoke the family
                for live in [t for t, c in state.refresh_tokens.items() if c == client]:
                    del state.refresh_tokens[live]
                return _oauth_error("invalid_grant")
            if state.refresh_tokens.get(old) != client:
                return _oauth_error("invalid_grant")
            del state.refresh_tokens[old]
            state.used_refresh_tokens.add(old)
            body = state._access_token(client)
            body["refresh_token"] = state.issue_refresh_token(client)
            return web.json_response(body)
        if grant == JWT_BEARER:
            assertion = form.get("assertion", "")
            try:
                unverified = jwt.decode(assertion, options={"verify_signature": False})
                key = state.jwt_issuers[unverified["iss"]]
                claims = jwt.decode(
                    assertion,
                    key,
                    algorithms=["RS256"],
                    audience=f"{state.url}/token",
                    issuer=unverified["iss"],
                    options={"require": ["iss", "aud", "exp", "iat"]},
                )
            except (jwt.PyJWTError, KeyError):
                return _oauth_error("invalid_grant")
            if claims["exp"] - claims["iat"] > 3600 or not claims.get("scope"):
                return _oauth_error("invalid_grant")
            return web.json_response(state._access_token(claims["iss"]))
        return _oauth_error("unsupported_grant_type")

    async def azure(request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        client = form.get("client_id", "")
        method = "assertion" if "client_assertion" in form else "post"
        if not await gate("azure", form.get("grant_type", ""), client, method, form):
            return _oauth_error("temporarily_unavailable", 503)
        if form.get("grant_type") != "client_credentials" or not form.get("scope"):
            return _oauth_error("invalid_request")
        if method == "assertion":
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                return _oauth_error("invalid_request")
            try:
                jwt.decode(
                    form["client_assertion"],
                    state.cluster_public_key,
                    algorithms=["RS256"],
                    audience=AZURE_AUDIENCE,
                    options={"require": ["exp", "sub", "aud"]},
                )
            except jwt.PyJWTError:
                return _oauth_error("invalid_client", 401)
        elif state.clients.get(client) != form.get("client_secret") or client not in state.clients:
            return _oauth_error("invalid_client", 401)
        body = state._access_token(client)
        body["ext_expires_in"] = state.lifetime
        return web.json_response(body)

    async def github(request: web.Request) -> web.Response:
        installation = request.match_info["installation"]
        header = request.headers.get("Authorization", "")
        app_jwt = header.removeprefix("Bearer ")
        app_id = ""
        try:
            unverified = jwt.decode(app_jwt, options={"verify_signature": False})
            app_id = str(unverified["iss"])
            claims = jwt.decode(
                app_jwt,
                state.github_apps[app_id],
                algorithms=["RS256"],
                issuer=app_id,
                options={"require": ["iat", "exp", "iss"]},
                leeway=0,
            )
            ok = claims["exp"] - claims["iat"] <= 660 and claims["iat"] <= time.time()
        except (jwt.PyJWTError, KeyError):
            ok = False
        if not await gate("github", "installation", app_id, "jwt", {}):
            return web.json_response({"message": "unavailable"}, status=503)
        if not ok or request.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            return web.json_response(
                {"message": "A JSON web token could not be decoded"}, status=401
            )
        if installation not in state.installations:
            return web.json_response({"message": "Not Found"}, status=404)
        token = "ghs_" + secrets.token_urlsafe(24)
        expires = time.time() + state.lifetime
        state.tokens[token] = Issued(expires, f"installation:{installation}")
        when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response({"token": token, "expires_at": when}, status=201)

    async def sts(request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if not await gate("sts", form.get("Action", ""), form.get("RoleArn", ""), "none", form):
            return _sts_error(503, "ServiceUnavailable")
        if form.get("Action") != "AssumeRoleWithWebIdentity" or form.get("Version") != "2011-06-15":
            return _sts_error(400, "InvalidAction")
        try:
            claims = jwt.decode(
                form.get("WebIdentityToken", ""),
                state.cluster_public_key,
                algorithms=["RS256"],
                audience=STS_AUDIENCE,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError:
            return _sts_error(400, "InvalidIdentityToken")
        if not form.get("RoleArn", "").startswith("arn:aws:iam::") or not form.get(
            "RoleSessionName"
        ):
            return _sts_error(400, "ValidationError")
        access = "ASIA" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        session = "IQoJ" + secrets.token_urlsafe(60)
        expires = math.ceil(time.time() + state.sts_lifetime)  # STS states whole seconds
        state.aws_keys[access] = (secret, session, expires)
        when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        xml = f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>{claims["sub"]}</SubjectFromWebIdentityToken>
    <Audience>{STS_AUDIENCE}</Audience>
    <AssumedRoleUser>
      <Arn>{form["RoleArn"].replace(":role/", ":assumed-role/")}/{form["RoleSessionName"]}</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:{form["RoleSessionName"]}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{session}</SessionToken>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <Expiration>{when}</Expiration>
      <AccessKeyId>{access}</AccessKeyId>
    </Credentials>
    <Provider>kubernetes</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""
        return web.Response(text=xml, content_type="text/xml")

    async def api(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        status = 200 if token and state.live(token) else 401
        state.api_calls.append((request.path, status))
        if status == 401:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"ok": True, "subject": state.tokens[token].subject})

    async def aws(request: web.Request) -> web.Response:
        body = await request.read()
        problem = _verify_sigv4(state, request, body)
        status = 403 if problem else 200
        state.api_calls.append((request.path_qs, status))
        if problem:
            return web.json_response({"message": problem}, status=403)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", azure)
    app.router.add_post("/app/installations/{installation}/access_tokens", github)
    app.router.add_post("/sts", sts)
    app.router.add_route("*", "/api{tail:.*}", api)
    app.router.add_route("*", "/aws{tail:.*}", aws)
    return app


def _sts_error(status: int, code: str) -> web.Response:
    xml = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender'
        f"</Type><Code>{code}</Code><Message>{code} (test)</Message></Error>"
        "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
    )
    return web.Response(text=xml, status=status, content_type="text/xml")


_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})"
)


def _verify_sigv4(state: TokenServer, request: web.Request, body: bytes) -> str:
    """ "" when the request's SigV4 signature is valid, else what is wrong (as AWS would say)."""
    match = _AUTH.fullmatch(request.headers.get("Authorization", ""))
    if match is None:
        return "MissingAuthenticationToken"
    known = state.aws_keys.get(match["key"])
    if known is None:
        return "InvalidClientTokenId"
    secret, session, expires = known
    if session and (request.headers.get("X-Amz-Security-Token") != session):
        return "InvalidToken"
    if time.time() > expires:
        return "ExpiredToken"
    stamp = request.headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "IncompleteSignature"
    if abs(signed_at.timestamp() - time.time()) > 300 or stamp[:8] != match["date"]:
        return "SignatureDoesNotMatch (time)"
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "IncompleteSignature"
    headers = {name: request.headers.get(name, "") for name in signed}
    if match["service"] == "s3":
        claimed = request.headers.get("X-Amz-Content-SHA256", "")
        if claimed != sha256(body).hexdigest():
            return "XAmzContentSHA256Mismatch"
    url = f"http://{request.host}{request.raw_path}"
    aws_request = AWSRequest(method=request.method, url=url, headers=headers, data=body)
    aws_request.context["timestamp"] = stamp
    signer_type = S3SigV4Auth if match["service"] == "s3" else SigV4Auth
    signer = signer_type(
        Credentials(match["key"], secret, session or None), match["service"], match["region"]
    )
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    return "" if hmac.compare_digest(expected, match["sig"]) else "SignatureDoesNotMatch"


@contextmanager
def run_token_server() -> Iterator[TokenServer]:
    """Serve on 127.0.0.1 (a free port) in a daemon thread for the block's life."""
    state = TokenServer()
    with serve_in_thread(lambda: _app(state), what="the token server") as (url, loop):
        state.url, state.loop = url, loop
        yield state
