"""Built-in presets: each loads with a dummy key; explicit keys override; facts are right."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from agent.config import (
    PRESET_ALIASES,
    PRESETS,
    HeaderAuth,
    parse_config,
    resolve_preset_name,
)
from agent.errors import ConfigError

SERVICES = {
    "openai",
    "anthropic",
    "azure_openai",
    "gemini",
    "aws",
    "azure",
    "google_cloud",
    "vercel",
    "github",
    "gitlab",
    "dockerhub",
    "kubernetes",
    "slack",
    "slack_webhook",
    "discord",
    "discord_webhook",
    "teams_webhook",
}
DUMMY_WEBHOOK = "https://hooks.example.com/services/dummy/path"


def _dummy_env() -> dict[str, str]:
    env = {
        "AWS_REGION": "eu-west-1",
        "AZURE_TENANT_ID": "tenant",
        "AZURE_CLIENT_ID": "client",
        "GOOGLE_APPLICATION_CREDENTIALS": "/var/run/gcp/key.json",
    }
    for preset in PRESETS.values():
        for variable in preset.key_env:
            env.setdefault(variable, DUMMY_WEBHOOK if variable.endswith("_URL") else "dummy-key")
    return env


def test_every_service_of_the_seed_has_a_preset() -> None:
    assert set(PRESETS) == SERVICES
    assert PRESET_ALIASES == {"google_ai": "gemini", "teams": "teams_webhook"}
    assert resolve_preset_name("Google-AI") == "gemini"
    assert resolve_preset_name("teams") == "teams_webhook"
    assert resolve_preset_name("nope") is None


# Credentials the preset itself cannot default (auth type and the rest come from the preset).
_COMPLETIONS: dict[str, dict[str, object]] = {
    "aws": {"auth": {"service": "s3", "access_key_id": "AKIA0", "secret_access_key": "x"}},
    "azure": {"auth": {"client_secret": "dummy"}},
}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_preset_loads_with_a_dummy_key(name: str) -> None:
    preset = PRESETS[name]
    entry: dict[str, object] = {"preset": name, **_COMPLETIONS.get(name, {})}
    data = {"integrations": {"svc": entry}}
    if preset.base_url is None and "webhook_url" not in preset.integration:
        # No fixed URL: a helpful error first, then it loads once base_url is given.
        with pytest.raises(ConfigError) as info:
            parse_config(data, _dummy_env())
        (problem,) = info.value.problems
        assert problem.path == "integrations.svc.base_url"
        assert f"preset '{name}' has no fixed URL" in problem.message
        assert preset.base_url_example
        assert preset.base_url_example in problem.message
        entry["base_url"] = preset.base_url_example.split()[0]
    integration = parse_config(data, _dummy_env()).integrations["svc"]
    assert integration.preset == name
    assert urlsplit(integration.effective_base_url()).scheme == "https"
    assert integration.auth.type != "none" or integration.webhook_url is not None
    if preset.base_url is not None:
        assert integration.base_url == preset.base_url


@pytest.mark.parametrize("name", sorted(SERVICES - {"kubernetes"}))  # k8s: the pod's token file
def test_a_missing_key_names_the_variable(name: str) -> None:
    preset = PRESETS[name]
    env = _dummy_env()
    del env[preset.key_env[0]]
    entry: dict[str, object] = {
        "preset": name,
        "base_url": (preset.base_url_example or "https://x.io").split()[0],
        **_COMPLETIONS.get(name, {}),
    }
    if preset.base_url or "webhook_url" in preset.integration:
        del entry["base_url"]
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"svc": entry}}, env)
    assert f"environment variable {preset.key_env[0]} is not set" in str(info.value)


def test_service_facts() -> None:
    config = parse_config(
        {
            "integrations": {
                name: {"preset": name}
                for name in ("anthropic", "github", "discord", "gemini", "gitlab")
            }
        },
        _dummy_env(),
    )
    anthropic = config.integrations["anthropic"]
    assert anthropic.headers["anthropic-version"] == "2023-06-01"
    assert anthropic.auth.secret_header() == "x-api-key"
    assert 529 in anthropic.retry.on_status
    assert anthropic.llm == "anthropic"
    github = config.integrations["github"].headers
    assert github["X-GitHub-Api-Version"] == "2022-11-28"
    assert github["Accept"] == "application/vnd.github+json"
    assert github["User-Agent"].startswith("kilo-agent/")
    discord = config.integrations["discord"]
    assert isinstance(discord.auth, HeaderAuth)
    assert (discord.auth.header, discord.auth.prefix) == ("Authorization", "Bot ")
    assert discord.headers["User-Agent"] == "DiscordBot (https://github.com/kilo/agent, 0.1)"
    assert discord.base_url == "https://discord.com/api/v10"
    assert config.integrations["gemini"].auth.secret_header() == "x-goog-api-key"
    assert config.integrations["gitlab"].auth.secret_header() == "private-token"
    assert all(i.rate_limit.adaptive for i in config.integrations.values())


def test_llm_kinds_are_otel_provider_names() -> None:
    kinds = {name: PRESETS[name].integration.get("llm") for name in PRESETS}
    assert {k: v for k, v in kinds.items() if v} == {
        "openai": "openai",
        "anthropic": "anthropic",
        "azure_openai": "azure.ai.openai",
        "gemini": "gcp.gemini",
    }


def test_explicit_keys_override_the_preset() -> None:
    data = {
        "integrations": {
            "discord": {
                "preset": "discord",
                "rate_limit": {"requests_per_minute": 600},  # replaces the preset's 50 rps
                "headers": {"X-Extra": "1"},
                "timeout": "5s",
            },
            "gh": {
                "preset": "github",
                "base_url": "https://ghe.example.com/api/v3",
                "auth": {
                    "type": "github_app",  # another type replaces the preset's auth entirely
                    "app_id": 42,
                    "private_key": "-----BEGIN PRIVATE KEY-----",
                    "installation_id": 7,
                    "api_url": "https://ghe.example.com/api/v3",
                },
            },
            "claude": {"preset": "anthropic", "auth": {"value": "${env:OTHER_KEY}"}},
        }
    }
    config = parse_config(data, {**_dummy_env(), "OTHER_KEY": "other"})
    discord = config.integrations["discord"]
    assert discord.rate_limit.requests_per_minute == 600
    assert discord.rate_limit.requests_per_second is None
    assert discord.rate_limit.adaptive is True
    assert set(discord.headers) == {"User-Agent", "X-Extra"}
    assert discord.timeout == 5.0
    gh = config.integrations["gh"]
    assert gh.base_url == "https://ghe.example.com/api/v3"
    assert gh.auth.type == "github_app"
    assert gh.auth.app_id == "42"  # type: ignore[union-attr]
    assert "X-GitHub-Api-Version" in gh.headers
    claude = config.integrations["claude"].auth
    assert isinstance(claude, HeaderAuth)
    assert (claude.header, claude.value.get()) == ("x-api-key", "other")


def test_a_preset_is_only_applied_when_named() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"openai": {}}}, _dummy_env())
    assert [p.path for p in info.value.problems] == ["integrations.openai.base_url"]


def test_unknown_preset_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"a": {"preset": "anthropc"}}}, {})
    (problem,) = info.value.problems
    assert problem.path == "integrations.a.preset"
    assert "did you mean 'anthropic'?" in problem.message


def test_preset_data_is_read_only() -> None:
    with pytest.raises(TypeError):
        PRESETS["openai"].integration["base_url"] = "https://evil.example"  # type: ignore[index]
    assert PRESETS["openai"].base_url == "https://api.openai.com/v1"
