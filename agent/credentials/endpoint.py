"""Talking to token endpoints: the https rule, one pooled client per provider, safe error reasons.

Every failure becomes a :class:`RefreshFailed` whose reason names the endpoint (scheme, host and
path only: a query may carry a secret) and what went wrong (the HTTP status and the OAuth
``error`` code), never a response body or a request value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from agent.config.base import is_loopback_host
from agent.credentials.cache import RefreshFailed, Token
from agent.errors import ConfigError, ConfigProblem

__all__ = [
    "TokenClient",
    "display_url",
    "json_object",
    "oauth_error",
    "parse_oauth_response",
    "parse_oauth_token",
    "require_secure_url",
    "seconds",
]

_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_MAX_TOKEN_RESPONSE = 256 * 1024


def require_secure_url(url: str, *, path: str) -> str:
    """The URL if it is https (or http on loopback); else a ConfigError located at ``path``.

    Config validation checks the same; checking again here keeps the rule true for URLs that do
    not come from a validated field (a credentials file's ``token_uri``, an environment variable).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError([ConfigProblem(path, "is not an absolute https:// URL")])
    if parsed.scheme != "https" and not is_loopback_host(parsed.host):
        raise ConfigError(
            [
                ConfigProblem(
                    path,
                    f"token endpoint {display_url(url)} must use https:// (a client secret must "
                    "never cross the network in clear; http:// is accepted on loopback only)",
                )
            ]
        )
    if parsed.userinfo:
        raise ConfigError([ConfigProblem(path, "must not carry user:password@")])
    return url


def display_url(url: str) -> str:
    """``scheme://host[:port]/path``: safe to log (no query, no user info)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def oauth_error(response: httpx.Response) -> str:
    """`` invalid_client``-style suffix from an OAuth/JSON error body, or ``""``.

    Only a short token-like code is kept: descriptions are free text a server may fill with
    anything it received.
    """
    try:
        data = json.loads(response.content[:_MAX_TOKEN_RESPONSE])
    except ValueError:
        return ""
    code = data.get("error") if isinstance(data, dict) else None
    if isinstance(code, dict):  # some APIs nest {"error": {"code": ...}}
        code = code.get("code")
    return f" {code}" if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""


def parse_oauth_token(response: httpx.Response, *, endpoint: str) -> Token[str]:
    """An RFC 6749 5.1 access-token response -> Token; anything else -> RefreshFailed."""
    return parse_oauth_response(response, endpoint=endpoint)[0]


def parse_oauth_response(
    response: httpx.Response, *, endpoint: str
) -> tuple[Token[str], dict[str, Any]]:
    """Like ``parse_oauth_token``, also returning the whole JSON object (``refresh_token``...)."""
    if response.status_code != 200:
        raise RefreshFailed(
            f"token endpoint {endpoint} answered {response.status_code}{oauth_error(response)}"
        )
    data = json_object(response, endpoint=endpoint)
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise RefreshFailed(f"token endpoint {endpoint} answered without an access_token")
    if any(ch in token for ch in "\r\n\0"):
        raise RefreshFailed(f"token endpoint {endpoint} answered an access_token with CR/LF/NUL")
    token_type = data.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        shown = token_type if isinstance(token_type, str) and len(token_type) < 32 else "?"
        raise RefreshFailed(f"token endpoint {endpoint} issued a '{shown}' token, not a Bearer one")
    lifetime = seconds(data.get("expires_in"))
    return Token(token, lifetime=lifetime, refresh_in=seconds(data.get("refresh_in"))), data


def json_object(response: httpx.Response, *, endpoint: str) -> dict[str, Any]:
    """The response body as a JSON object, or RefreshFailed."""
    if len(response.content) > _MAX_TOKEN_RESPONSE:
        raise RefreshFailed(f"token endpoint {endpoint} answered more than 256 KiB")
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RefreshFailed(f"token endpoint {endpoint} did not answer a JSON object")
    return data


def seconds(value: object) -> float | None:
    """``expires_in``-style value (number or numeric string) -> float seconds, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


class TokenClient:
    """The provider's own pooled ``httpx.AsyncClient`` for its token endpoint.

    Created at start-up (or on first use if a test skips ``start``); never follows redirects (a
    redirect could carry a client secret to another host) and ignores proxy environment
    variables, like the integrations' own clients.
    """

    def __init__(self, *, timeout: float = 10.0, verify: Any = True) -> None:
        self._timeout = timeout
        self._verify = verify
        self._client: httpx.AsyncClient | None = None

    def open(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                follow_redirects=False,
                trust_env=False,
                verify=self._verify,
                headers={"User-Agent": "kilo-agent", "Accept": "application/json"},
            )
        return self._client

    async def post(
        self,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        """POST to a token endpoint; transport failures become RefreshFailed."""
        client = self.open()
        try:
            return await client.post(url, data=data, headers=headers, json=json_body)
        except httpx.TimeoutException:
            raise RefreshFailed(
                f"token endpoint {display_url(url)} did not answer within {self._timeout:.0f}s"
            ) from None
        except httpx.HTTPError as exc:
            raise RefreshFailed(
                f"token endpoint {display_url(url)} is unreachable ({type(exc).__name__})"
            ) from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
