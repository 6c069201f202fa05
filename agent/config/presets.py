"""Built-in presets: what the agent knows about each service of the seed (data, not code).

A preset is a partial integration in the configuration's own keys. ``preset: <name>`` merges it
under the user's keys (the user's keys win; see ``merge.py``). Credentials default to the
service's usual environment variable through ``${env:VAR}``, so a missing key is reported like
any other reference: at ``integrations.<name>.auth.<field>``, naming the variable.

Sources (checked 2026-08): official SDKs (openai-python ``_client.py``/``lib/azure.py``,
anthropic-sdk-python ``_client.py``, googleapis/python-genai ``_api_client.py``), GitHub REST
"API versions", GitLab REST authentication, Discord ``developers/reference.mdx``, and
``/work/shared/reference/services.md``. ``llm`` values are OpenTelemetry ``gen_ai.provider.name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "AGENT_USER_AGENT",
    "DISCORD_USER_AGENT",
    "PRESETS",
    "PRESET_ALIASES",
    "Preset",
    "resolve_preset_name",
]

AGENT_USER_AGENT = "kilo-agent/0.1"
#: Discord requires ``DiscordBot ($url, $versionNumber)``.
DISCORD_USER_AGENT = "DiscordBot (https://github.com/kilo/agent, 0.1)"

_ADAPTIVE = {"adaptive": True}
#: What the OpenAI and Anthropic SDKs retry (408, 409, 429, >= 500), minus 501/505+.
_LLM_RETRY = [408, 409, 429, 500, 502, 503, 504]


@dataclass(frozen=True, slots=True)
class Preset:
    """One service: its integration defaults and how the seed format and env defaults map to it.

    ``integration`` holds configuration keys; ``key_env`` the usual environment variables, the
    first one being the one the preset references; ``seed_field`` is the ``auth`` field that a seed
    entry's ``apiKey``/``botToken`` fills; ``webhook`` names the preset for the same service's
    incoming-webhook URL; ``base_url_example`` is shown when the user must give ``base_url``.
    """

    name: str
    title: str
    integration: Mapping[str, Any]
    key_env: tuple[str, ...] = ()
    seed_field: str | None = None
    webhook: str | None = None
    base_url_example: str | None = None
    notes: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def base_url(self) -> str | None:
        """The fixed base URL, or None when each user has their own (resource, region...)."""
        value = self.integration.get("base_url")
        return value if isinstance(value, str) else None


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _preset(name: str, title: str, integration: dict[str, Any], **extra: Any) -> Preset:
    return Preset(name=name, title=title, integration=_freeze(integration), **extra)


_ALL = [
    # -- AI providers -----------------------------------------------------------------------
    _preset(
        "openai",
        "OpenAI API",
        {
            "base_url": "https://api.openai.com/v1",
            "auth": {"type": "bearer", "token": "${env:OPENAI_API_KEY}"},
            "llm": "openai",
            "rate_limit": _ADAPTIVE,
            "retry": {"on_status": _LLM_RETRY},
        },
        key_env=("OPENAI_API_KEY",),
        seed_field="token",
    ),
    _preset(
        "anthropic",
        "Anthropic API",
        {
            "base_url": "https://api.anthropic.com/v1",
            "auth": {"type": "header", "header": "x-api-key", "value": "${env:ANTHROPIC_API_KEY}"},
            "headers": {"anthropic-version": "2023-06-01"},
            "llm": "anthropic",
            "rate_limit": _ADAPTIVE,
            "retry": {"on_status": [*_LLM_RETRY, 529]},  # 529 = overloaded
        },
        key_env=("ANTHROPIC_API_KEY",),
        seed_field="value",
        notes="base_url includes /v1 (paths like /messages); the SDK's base is the bare host.",
    ),
    _preset(
        "azure_openai",
        "Azure OpenAI",
        {
            "auth": {"type": "header", "header": "api-key", "value": "${env:AZURE_OPENAI_API_KEY}"},
            "llm": "azure.ai.openai",
            "rate_limit": _ADAPTIVE,
            "retry": {"on_status": [429, 500, 502, 503, 504]},
        },
        key_env=("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"),
        seed_field="value",
        base_url_example="https://my-resource.openai.azure.com/openai",
        notes="classic paths need ?api-version=...; Entra ID: auth type azure_ad with scope "
        "https://cognitiveservices.azure.com/.default",
    ),
    _preset(
        "gemini",
        "Google AI Gemini API",
        {
            "base_url": "https://generativelanguage.googleapis.com/v1beta",
            "auth": {
                "type": "header",
                "header": "x-goog-api-key",
                "value": "${env:GEMINI_API_KEY}",
            },
            "llm": "gcp.gemini",
            "rate_limit": _ADAPTIVE,
            "retry": {"on_status": [429, 500, 502, 503, 504]},
        },
        key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        seed_field="value",
        aliases=("google_ai",),
    ),
    # -- Cloud providers --------------------------------------------------------------------
    _preset(
        "aws",
        "Amazon Web Services (SigV4)",
        {
            "auth": {"type": "aws_sigv4", "region": "${env:AWS_REGION}"},
            "rate_limit": _ADAPTIVE,
            "retry": {"on_status": [429, 500, 502, 503, 504]},
        },
        key_env=("AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        base_url_example="https://s3.us-east-1.amazonaws.com (https://{service}.{region}.amazonaws.com)",
        notes="auth needs service (e.g. s3) and keys or role_arn + web_identity_token_file",
    ),
    _preset(
        "azure",
        "Azure Resource Manager",
        {
            "base_url": "https://management.azure.com",
            "auth": {
                "type": "azure_ad",
                "tenant_id": "${env:AZURE_TENANT_ID}",
                "client_id": "${env:AZURE_CLIENT_ID}",
                "scope": "https://management.azure.com/.default",
            },
            "rate_limit": _ADAPTIVE,
        },
        key_env=("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"),
        notes="every ARM call needs ?api-version=...; auth needs client_secret or "
        "federated_token_file",
    ),
    _preset(
        "google_cloud",
        "Google Cloud APIs",
        {
            "auth": {
                "type": "google_service_account",
                "credentials_file": "${env:GOOGLE_APPLICATION_CREDENTIALS}",
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            },
            "rate_limit": _ADAPTIVE,
            "retry": {"on_status": [429, 500, 502, 503, 504]},
        },
        key_env=("GOOGLE_APPLICATION_CREDENTIALS",),
        base_url_example="https://storage.googleapis.com/storage/v1 (https://{service}.googleapis.com)",
    ),
    _preset(
        "vercel",
        "Vercel REST API",
        {
            "base_url": "https://api.vercel.com",
            "auth": {"type": "bearer", "token": "${env:VERCEL_TOKEN}"},
            "rate_limit": _ADAPTIVE,
        },
        key_env=("VERCEL_TOKEN",),
        seed_field="token",
    ),
    # -- Developer platforms ----------------------------------------------------------------
    _preset(
        "github",
        "GitHub REST API",
        {
            "base_url": "https://api.github.com",
            "auth": {"type": "bearer", "token": "${env:GITHUB_TOKEN}"},
            "headers": {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": AGENT_USER_AGENT,
            },
            # Secondary limit: at most 100 concurrent requests.
            "rate_limit": {"adaptive": True, "max_concurrent": 100},
        },
        key_env=("GITHUB_TOKEN",),
        seed_field="token",
        notes="GitHub Enterprise Server: base_url https://{host}/api/v3",
    ),
    _preset(
        "gitlab",
        "GitLab REST API",
        {
            "base_url": "https://gitlab.com/api/v4",
            "auth": {"type": "header", "header": "PRIVATE-TOKEN", "value": "${env:GITLAB_TOKEN}"},
            "rate_limit": _ADAPTIVE,
        },
        key_env=("GITLAB_TOKEN",),
        seed_field="value",
        notes="self-managed: base_url https://{host}/api/v4",
    ),
    _preset(
        "dockerhub",
        "Docker Hub API",
        {
            "base_url": "https://hub.docker.com/v2",
            "auth": {"type": "bearer", "token": "${env:DOCKERHUB_TOKEN}"},
            "rate_limit": _ADAPTIVE,
        },
        key_env=("DOCKERHUB_TOKEN",),
        seed_field="token",
        notes="the token is the bearer JWT of POST /v2/users/login (Hub API)",
    ),
    _preset(
        "kubernetes",
        "Kubernetes API (in cluster)",
        {
            "base_url": "https://kubernetes.default.svc",
            "auth": {"type": "kubernetes"},
            "transport": {"ca_file": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"},
            "rate_limit": _ADAPTIVE,
        },
        key_env=("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"),
    ),
    # -- Communication ----------------------------------------------------------------------
    _preset(
        "slack",
        "Slack Web API",
        {
            "base_url": "https://slack.com/api",
            "auth": {"type": "bearer", "token": "${env:SLACK_BOT_TOKEN}"},
            "rate_limit": _ADAPTIVE,
        },
        key_env=("SLACK_BOT_TOKEN",),
        seed_field="token",
        webhook="slack_webhook",
        notes='errors come as HTTP 200 with {"ok": false}',
    ),
    _preset(
        "slack_webhook",
        "Slack incoming webhook",
        {"webhook_url": "${env:SLACK_WEBHOOK_URL}", "rate_limit": _ADAPTIVE},
        key_env=("SLACK_WEBHOOK_URL",),
        base_url_example="webhook_url: https://hooks.slack.com/services/T000/B000/secret",
    ),
    _preset(
        "discord",
        "Discord REST API (bot)",
        {
            "base_url": "https://discord.com/api/v10",
            "auth": {
                "type": "header",
                "header": "Authorization",
                "prefix": "Bot ",
                "value": "${env:DISCORD_BOT_TOKEN}",
            },
            "headers": {"User-Agent": DISCORD_USER_AGENT},
            # Global limit: 50 requests per second per bot.
            "rate_limit": {"adaptive": True, "requests_per_second": 50},
        },
        key_env=("DISCORD_BOT_TOKEN",),
        seed_field="value",
        webhook="discord_webhook",
    ),
    _preset(
        "discord_webhook",
        "Discord webhook",
        {
            "webhook_url": "${env:DISCORD_WEBHOOK_URL}",
            "headers": {"User-Agent": DISCORD_USER_AGENT},
            "rate_limit": _ADAPTIVE,
        },
        key_env=("DISCORD_WEBHOOK_URL",),
        base_url_example="webhook_url: https://discord.com/api/webhooks/{id}/{token}",
    ),
    _preset(
        "teams_webhook",
        "Microsoft Teams incoming webhook (Workflows)",
        {"webhook_url": "${env:TEAMS_WEBHOOK_URL}", "rate_limit": _ADAPTIVE},
        key_env=("TEAMS_WEBHOOK_URL",),
        base_url_example="webhook_url: https://prod-00.westus.logic.azure.com/workflows/...",
        aliases=("teams",),
    ),
]

#: Preset name -> preset (canonical names only; see ``PRESET_ALIASES``).
PRESETS: Mapping[str, Preset] = MappingProxyType({preset.name: preset for preset in _ALL})
#: Other names accepted for a preset.
PRESET_ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: preset.name for preset in _ALL for alias in preset.aliases}
)


def resolve_preset_name(name: str) -> str | None:
    """The canonical preset name for ``name`` (aliases and case folded), or None."""
    key = name.strip().lower().replace("-", "_")
    if key in PRESETS:
        return key
    return PRESET_ALIASES.get(key)
