"""``url.full`` without secrets: userinfo dropped, secret-bearing query values ``REDACTED``,
webhook URLs (whose path *is* the secret) cut down to ``scheme://host[:port]``.

The query is edited as text so that every other parameter keeps its exact encoding.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

__all__ = ["REDACTED", "is_webhook_url", "redact_url"]

REDACTED: Final = "REDACTED"

#: Query names whose values are credentials (compared lower-case), after the semantic
#: conventions' list (AWS, Azure SAS, GCS signed URLs) plus the usual API-key/token names.
_SECRET_NAMES: Final = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "api-key",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "awsaccesskeyid",
        "x-goog-signature",
        "x-goog-credential",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "secret",
        "password",
        "passwd",
        "code",
        "auth",
        "authorization",
        "session_token",
        "sessiontoken",
    }
)
_SECRET_SUFFIXES: Final = ("token", "secret", "password", "signature", "_key", "-key", "apikey")

#: Hosts (exact or a suffix after a dot) whose URLs carry the secret in the path.
_WEBHOOK_HOSTS: Final = (
    "hooks.slack.com",
    "webhook.office.com",
    "logic.azure.com",
    "hooks.zapier.com",
)
_DISCORD_HOSTS: Final = ("discord.com", "discordapp.com")


def _host_matches(host: str, suffixes: tuple[str, ...]) -> bool:
    return any(host == s or host.endswith("." + s) for s in suffixes)


def is_webhook_url(url: str) -> bool:
    """Whether ``url`` is a webhook whose path is its secret (Slack, Discord, Teams, Logic Apps)."""
    _scheme, sep, rest = url.partition("://")
    if not sep:
        return False
    authority, _, path = rest.partition("/")
    host = authority.rpartition("@")[2].rsplit(":", 1)[0].lower()
    if _host_matches(host, _WEBHOOK_HOSTS):
        return True
    if _host_matches(host, _DISCORD_HOSTS):
        return "/webhooks/" in f"/{path}"
    return host == "outlook.office.com" and path.startswith("webhook")


def _secret_name(name: str) -> bool:
    lowered = unquote(name).lower()
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def redact_url(url: str, *, webhook: bool = False) -> str:
    """``url`` safe for a span attribute; ``webhook=True`` keeps only scheme, host and port."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return REDACTED  # not an absolute URL: nothing we can vouch for
    cut = len(rest)
    for mark in "/?#":
        pos = rest.find(mark)
        if pos != -1 and pos < cut:
            cut = pos
    authority, tail = rest[:cut], rest[cut:]
    authority = authority.rpartition("@")[2]  # userinfo is a credential, always dropped
    if webhook or is_webhook_url(url):
        return f"{scheme}://{authority}"
    tail = tail.partition("#")[0]
    path, qmark, query = tail.partition("?")
    if not qmark:
        return f"{scheme}://{authority}{path}"
    parts = []
    for item in query.split("&"):
        name, eq, _value = item.partition("=")
        parts.append(f"{name}={REDACTED}" if eq and _secret_name(name) else item)
    return f"{scheme}://{authority}{path}?{'&'.join(parts)}"
