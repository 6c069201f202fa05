"""The configuration used when there is no file: presets enabled by environment variables.

One integration per preset whose usual variables are set (and non-empty). Credentials stay
``${env:VAR}`` references, resolved and validated like a file's. Services that need more than a
key are enabled only when everything they need is there:

* ``azure_openai``: ``AZURE_OPENAI_API_KEY`` and ``AZURE_OPENAI_ENDPOINT`` (base URL
  ``<endpoint>/openai``).
* ``gemini``: ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``.
* ``kubernetes``: ``KUBERNETES_SERVICE_HOST`` (+ ``KUBERNETES_SERVICE_PORT``, default 443),
  with the pod's service-account token.
* ``aws``: a region (``AWS_REGION`` or ``AWS_DEFAULT_REGION``), static keys
  (``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` if set) or IRSA
  (``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``), and ``KILO_AWS_SERVICE`` (SigV4 signs
  for one service, e.g. ``s3``; base URL ``https://{service}.{region}.amazonaws.com``).
* ``azure`` (ARM): ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID`` and ``AZURE_CLIENT_SECRET`` or
  ``AZURE_FEDERATED_TOKEN_FILE`` (``AZURE_AUTHORITY_HOST`` honoured).
* ``google_cloud``: ``GOOGLE_APPLICATION_CREDENTIALS``; base URL ``KILO_GOOGLE_CLOUD_BASE_URL``,
  else Cloud Storage's JSON API.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from .loader import parse_config
from .models import Config

__all__ = ["default_config"]

_KEY_ONLY = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "slack": "SLACK_BOT_TOKEN",
    "slack_webhook": "SLACK_WEBHOOK_URL",
    "discord": "DISCORD_BOT_TOKEN",
    "discord_webhook": "DISCORD_WEBHOOK_URL",
    "teams_webhook": "TEAMS_WEBHOOK_URL",
    "github": "GITHUB_TOKEN",
    "gitlab": "GITLAB_TOKEN",
    "vercel": "VERCEL_TOKEN",
    "dockerhub": "DOCKERHUB_TOKEN",
}
_GOOGLE_CLOUD_DEFAULT_URL = "https://storage.googleapis.com/storage/v1"

_Env = Callable[[str], str]


def _env_ref(variable: str) -> str:
    """A ``${env:VAR}`` reference: credentials are resolved (and checked) like a file's."""
    return "${env:" + variable + "}"


def default_config(env: Mapping[str, str] | None = None) -> tuple[Config, list[str]]:
    """The built-in configuration and the names of the integrations it enabled."""
    environ = os.environ if env is None else env

    def get(name: str) -> str:
        return environ.get(name, "").strip()

    integrations: dict[str, dict[str, Any]] = {}
    for preset, variable in _KEY_ONLY.items():
        if get(variable):
            integrations[preset] = {"preset": preset}
    for name, build in _BUILDERS.items():
        entry = build(get)
        if entry is not None:
            integrations[name] = entry
    ordered = dict(sorted(integrations.items()))
    config = parse_config(
        {"integrations": ordered}, environ, source="built-in default (from the environment)"
    )
    return config, list(ordered)


def _azure_openai(get: _Env) -> dict[str, Any] | None:
    if not (get("AZURE_OPENAI_API_KEY") and get("AZURE_OPENAI_ENDPOINT")):
        return None
    return {
        "preset": "azure_openai",
        "base_url": get("AZURE_OPENAI_ENDPOINT").rstrip("/") + "/openai",
    }


def _gemini(get: _Env) -> dict[str, Any] | None:
    if get("GEMINI_API_KEY"):
        return {"preset": "gemini"}
    if get("GOOGLE_API_KEY"):
        return {"preset": "gemini", "auth": {"value": _env_ref("GOOGLE_API_KEY")}}
    return None


def _kubernetes(get: _Env) -> dict[str, Any] | None:
    host = get("KUBERNETES_SERVICE_HOST")
    if not host:
        return None
    port = get("KUBERNETES_SERVICE_PORT") or "443"
    if ":" in host:
        host = f"[{host}]"
    return {"preset": "kubernetes", "base_url": f"https://{host}:{port}"}


def _aws(get: _Env) -> dict[str, Any] | None:
    region = get("AWS_REGION") or get("AWS_DEFAULT_REGION")
    service = get("KILO_AWS_SERVICE")
    if not (region and service):
        return None
    auth: dict[str, Any] = {"type": "aws_sigv4", "region": region, "service": service}
    if get("AWS_ACCESS_KEY_ID") and get("AWS_SECRET_ACCESS_KEY"):
        auth["access_key_id"] = _env_ref("AWS_ACCESS_KEY_ID")
        auth["secret_access_key"] = _env_ref("AWS_SECRET_ACCESS_KEY")
        if get("AWS_SESSION_TOKEN"):
            auth["session_token"] = _env_ref("AWS_SESSION_TOKEN")
    elif get("AWS_ROLE_ARN") and get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        auth["role_arn"] = _env_ref("AWS_ROLE_ARN")
        auth["web_identity_token_file"] = _env_ref("AWS_WEB_IDENTITY_TOKEN_FILE")
    else:
        return None
    return {
        "preset": "aws",
        "base_url": f"https://{service}.{region}.amazonaws.com",
        "auth": auth,
    }


def _azure(get: _Env) -> dict[str, Any] | None:
    if not (get("AZURE_TENANT_ID") and get("AZURE_CLIENT_ID")):
        return None
    auth: dict[str, Any] = {}
    if get("AZURE_CLIENT_SECRET"):
        auth["client_secret"] = _env_ref("AZURE_CLIENT_SECRET")
    elif get("AZURE_FEDERATED_TOKEN_FILE"):
        auth["federated_token_file"] = _env_ref("AZURE_FEDERATED_TOKEN_FILE")
    else:
        return None
    if get("AZURE_AUTHORITY_HOST"):
        auth["authority"] = get("AZURE_AUTHORITY_HOST").rstrip("/")
    return {"preset": "azure", "auth": auth}


def _google_cloud(get: _Env) -> dict[str, Any] | None:
    if not get("GOOGLE_APPLICATION_CREDENTIALS"):
        return None
    base_url = get("KILO_GOOGLE_CLOUD_BASE_URL") or _GOOGLE_CLOUD_DEFAULT_URL
    return {"preset": "google_cloud", "base_url": base_url}


_BUILDERS: dict[str, Callable[[_Env], dict[str, Any] | None]] = {
    "azure_openai": _azure_openai,
    "gemini": _gemini,
    "kubernetes": _kubernetes,
    "aws": _aws,
    "azure": _azure,
    "google_cloud": _google_cloud,
}
