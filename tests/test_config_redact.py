"""No secret ever leaves through repr, str, ConfigError or the redacted dump."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import load_config, parse_config, redacted_dump
from agent.errors import ConfigError

SECRETS = {
    "OPENAI_API_KEY": "sk-LEAKCHECK-openai-000001",
    "CALLER_TOKEN": "LEAKCHECK-caller-000002",
    "CLIENT_SECRET": "LEAKCHECK-client-secret-000003",
    "WEBHOOK_PATH": "T0001/B0001/LEAKCHECKhook000004",
    "REDIS_PASSWORD": "LEAKCHECKredispw000005",
    "PASSWORD": "LEAKCHECK-basic-000006",
    "CUSTOM_TOKEN": "LEAKCHECK-header-000007",
}
FILE_SECRET = "LEAKCHECK-from-a-file-000008"


def _config_file(tmp_path: Path) -> Path:
    (tmp_path / "private.pem").write_text(FILE_SECRET + "\n")
    path = tmp_path / "agent.yaml"
    path.write_text(
        """
callers:
  - {name: web, token: "${CALLER_TOKEN}"}
redis: {url: "redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0"}
integrations:
  openai: {preset: openai}
  idp:
    base_url: https://api.example.com
    auth:
      type: oauth2_client_credentials
      token_url: https://login.example.com/token
      client_id: agent
      client_secret: ${env:CLIENT_SECRET}
  gh:
    base_url: https://api.github.com
    headers: {X-Custom-Token: "${CUSTOM_TOKEN}", X-Trace-Tag: visible}
    auth: {type: github_app, app_id: 1, installation_id: 2, private_key: "${file:private.pem}"}
  basic:
    base_url: https://api.example.com
    auth: {type: basic, username: agent, password: "${PASSWORD}"}
  hook: {webhook_url: "https://hooks.slack.com/services/${WEBHOOK_PATH}"}
"""
    )
    return path


def _leaks(text: str) -> list[str]:
    values = [*SECRETS.values(), FILE_SECRET]
    return [value for value in values if value in text]


def test_secrets_are_loaded(tmp_path: Path) -> None:
    config = load_config(_config_file(tmp_path), env=SECRETS)
    assert config.integrations["gh"].auth.private_key.get() == FILE_SECRET  # type: ignore[union-attr]
    assert config.integrations["hook"].effective_base_url().endswith(SECRETS["WEBHOOK_PATH"])


def test_nothing_leaks_from_a_loaded_config(tmp_path: Path) -> None:
    config = load_config(_config_file(tmp_path), env=SECRETS)
    dump = redacted_dump(config)
    text = json.dumps(dump)  # JSON-serialisable as it stands
    assert _leaks(text) == []
    assert _leaks(repr(config)) == []
    assert _leaks(str(config)) == []
    # Plain dumps mask every Secret; `headers` are plain strings (credentials belong in `auth`),
    # which is why redacted_dump masks credential-looking header names.
    assert _leaks(str(config.model_dump(exclude={"integrations": {"gh": {"headers"}}}))) == []
    integrations = dump["integrations"]
    assert integrations["openai"]["auth"]["token"] == "***"
    assert dump["callers"][0]["token"] == "***"
    assert integrations["hook"]["webhook_url"] == "https://hooks.slack.com/***"
    assert integrations["hook"]["base_url"] == "https://hooks.slack.com"
    assert dump["redis"]["url"] == "redis://:***@127.0.0.1:6379/0"
    assert integrations["gh"]["headers"] == {"X-Custom-Token": "***", "X-Trace-Tag": "visible"}
    assert integrations["idp"]["auth"]["client_id"] == "agent"  # identifiers stay visible
    assert integrations["openai"]["timeout"] == 30.0


def test_nothing_leaks_from_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        """
callers:
  - {name: a, token: "${CALLER_TOKEN}"}
  - {name: b, token: "${CALLER_TOKEN}"}          # same token twice
integrations:
  svc:
    base_url: "${OPENAI_API_KEY}"                 # a secret where a URL belongs
    timeout: "${CLIENT_SECRET}"                   # ... and where a duration belongs
    max_body: "${PASSWORD}"
    auth: {type: header, header: "${CUSTOM_TOKEN}", value: "${CUSTOM_TOKEN}"}
  hook: {webhook_url: "http://hooks.slack.com/services/${WEBHOOK_PATH}"}
redis: {url: "postgres://:${REDIS_PASSWORD}@db"}
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env=SECRETS)
    assert len(info.value.problems) == 6
    assert _leaks(str(info.value)) == []
    assert _leaks(repr(info.value)) == []
    assert _leaks(" ".join(p.message + p.path for p in info.value.problems)) == []


def test_pydantic_errors_of_direct_construction_do_not_leak() -> None:
    data = {
        "integrations": {
            "svc": {
                "base_url": "https://x.io",
                "auth": {
                    "type": "azure_ad",
                    "tenant_id": "t",
                    "client_id": "c",
                    "scope": "s",
                    "client_secret": SECRETS["CLIENT_SECRET"],
                    "federated_token_file": "/f",
                },
            }
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, {})
    assert _leaks(str(info.value)) == []
