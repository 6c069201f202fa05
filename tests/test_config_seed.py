"""The seed document's integrations block (camelCase keys, timeout in ms) loads as it stands."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.config import BearerAuth, Config, HeaderAuth, NoAuth, load_config, parse_config
from agent.errors import ConfigError

DATA = Path(__file__).parent / "data" / "config"
ENV = {
    "OPENAI_API_KEY": "sk-seed-openai-0001",
    "ANTHROPIC_API_KEY": "sk-ant-seed-0002",
    "SLACK_BOT_TOKEN": "xoxb-seed-0003",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/seedhook0004",
    "DISCORD_BOT_TOKEN": "discord-seed-0005",
    "TEAMS_WEBHOOK_URL": "https://prod-01.westus.logic.azure.com/workflows/w/triggers/manual/paths/invoke?sig=seed0006",
    "GITHUB_TOKEN": "ghp_seed0007",
}


@pytest.fixture(params=["seed-sample.yaml", "seed-sample.json"])
def seed_config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    path = tmp_path / request.param
    shutil.copy(DATA / request.param, path)
    return load_config(path, env=ENV)


def test_seed_sample_maps_every_entry(seed_config: Config) -> None:
    integrations = seed_config.integrations
    assert set(integrations) == {
        "openai",
        "anthropic",
        "slack",
        "slack_webhook",
        "discord",
        "teams",
        "github",
    }

    openai = integrations["openai"]
    assert openai.preset == "openai"
    assert openai.timeout == 30.0  # 30000 ms
    assert openai.base_url == "https://api.openai.com/v1"
    assert isinstance(openai.auth, BearerAuth)
    assert openai.auth.token.get() == ENV["OPENAI_API_KEY"]
    assert openai.auth.token.source == "env:OPENAI_API_KEY"

    anthropic = integrations["anthropic"]
    assert isinstance(anthropic.auth, HeaderAuth)
    assert (anthropic.auth.header, anthropic.auth.value.get()) == (
        "x-api-key",
        ENV["ANTHROPIC_API_KEY"],
    )
    assert anthropic.headers["anthropic-version"] == "2023-06-01"
    assert anthropic.timeout == 30.0  # the default

    slack = integrations["slack"]
    assert slack.base_url == "https://slack.com/api"
    assert isinstance(slack.auth, BearerAuth)
    assert slack.auth.token.get() == ENV["SLACK_BOT_TOKEN"]
    hook = integrations["slack_webhook"]
    assert hook.preset == "slack_webhook"
    assert isinstance(hook.auth, NoAuth)
    assert hook.effective_base_url() == ENV["SLACK_WEBHOOK_URL"]
    assert hook.display_base_url() == "https://hooks.slack.com/***"

    discord = integrations["discord"]
    assert isinstance(discord.auth, HeaderAuth)
    assert discord.auth.prefix == "Bot "
    assert discord.auth.value.get() == ENV["DISCORD_BOT_TOKEN"]
    assert discord.auth.secret_header() == "authorization"

    teams = integrations["teams"]
    assert teams.preset == "teams_webhook"
    assert teams.effective_base_url() == ENV["TEAMS_WEBHOOK_URL"]
    assert teams.base_url == "https://prod-01.westus.logic.azure.com"

    github = integrations["github"]  # `enabled: true` is tolerated
    assert isinstance(github.auth, BearerAuth)
    assert github.auth.token.get() == ENV["GITHUB_TOKEN"]
    assert github.headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_yaml_and_json_samples_are_the_same(tmp_path: Path) -> None:
    assert load_config(DATA / "seed-sample.yaml", env=ENV) == load_config(
        DATA / "seed-sample.json", env=ENV
    )


def test_problems_point_at_the_seed_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k not in ("OPENAI_API_KEY", "SLACK_WEBHOOK_URL")}
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "seed-sample.yaml", env=env)
    problems = {problem.path: problem.message for problem in info.value.problems}
    assert set(problems) == {"integrations.openai.apiKey", "integrations.slack.webhookUrl"}
    assert "OPENAI_API_KEY is not set" in problems["integrations.openai.apiKey"]


def test_disabled_entries_are_dropped_before_resolving() -> None:
    data = {
        "integrations": {
            "openai": {"apiKey": "${NOT_SET_ANYWHERE}", "enabled": False},
            "github": {"apiKey": "ghp_x", "enabled": True},
            "svc": {"base_url": "https://x.io", "enabled": False},
        }
    }
    assert set(parse_config(data, {}).integrations) == {"github"}
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"github": {"apiKey": "x", "enabled": "yes"}}}, {})
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("integrations.github.enabled", "must be true or false")
    ]


def test_seed_entry_choosers_and_generic_services() -> None:
    data = {
        "integrations": {
            "llm": {"provider": "anthropic", "apiKey": "k1"},
            "chat": {
                "type": "discord",
                "botToken": "k2",
                "webhookUrl": "https://discord.com/api/webhooks/1/abc",
            },
            "gemini_alias": {"preset": "google_ai", "apiKey": "k3", "timeout": "45s"},
            "custom": {"apiKey": "k4", "baseUrl": "https://api.custom.example/v2", "timeout": 1500},
            "alerts": {"preset": "slack", "webhookUrl": "https://hooks.slack.com/services/a/b/c"},
        }
    }
    config = parse_config(data, {}).integrations
    assert config["llm"].preset == "anthropic"
    assert config["chat"].preset == "discord"
    assert config["chat_webhook"].preset == "discord_webhook"
    assert config["chat_webhook"].headers["User-Agent"].startswith("DiscordBot (")
    assert config["gemini_alias"].preset == "gemini"
    assert config["gemini_alias"].timeout == 45.0  # duration strings stay durations
    custom = config["custom"]
    assert custom.preset is None
    assert custom.base_url == "https://api.custom.example/v2"
    assert custom.timeout == 1.5
    assert isinstance(custom.auth, BearerAuth)
    assert custom.auth.token.get() == "k4"
    assert config["alerts"].preset == "slack_webhook"  # a Slack entry with only a webhook URL
    assert config["alerts"].auth.type == "none"


def test_seed_conflicts() -> None:
    data = {
        "integrations": {
            "slack": {
                "botToken": "a",
                "apiKey": "b",
                "webhookUrl": "https://hooks.slack.com/services/x",
            },
            "slack_webhook": {
                "preset": "slack_webhook",
                "webhook_url": "https://hooks.slack.com/y",
            },
            "teams": {"apiKey": "k", "webhookUrl": "https://example.logic.azure.com/w"},
            "typo": {"preset": "opeani", "apiKey": "k"},
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, {})
    problems = {p.path: p.message for p in info.value.problems}
    assert problems["integrations.slack.apiKey"] == "give apiKey or botToken, not both"
    assert problems["integrations.slack.webhookUrl"] == (
        "would define 'slack_webhook', which the file defines too; rename one of them"
    )
    assert "takes no apiKey" in problems["integrations.teams.apiKey"]
    assert len(problems) == 4  # teams' webhookUrl is still its own webhook_url
    assert "did you mean 'openai'?" in problems["integrations.typo.preset"]
