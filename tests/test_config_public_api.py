"""The package's public surface, and its place in the dependency graph (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys

import agent.config

EXPECTED = {
    "load_config",
    "parse_config",
    "default_config",
    "redacted_dump",
    "Secret",
    "Config",
    "ListenConfig",
    "ServerConfig",
    "CallerConfig",
    "RedisConfig",
    "TelemetryConfig",
    "IntegrationConfig",
    "TransportConfig",
    "RateLimitConfig",
    "CircuitBreakerConfig",
    "RetryConfig",
    "CacheConfig",
    "AuthConfig",
    "NoAuth",
    "BearerAuth",
    "HeaderAuth",
    "BasicAuth",
    "OAuth2ClientCredentialsAuth",
    "OAuth2RefreshTokenAuth",
    "GoogleServiceAccountAuth",
    "GithubAppAuth",
    "AzureAdAuth",
    "AwsSigV4Auth",
    "KubernetesAuth",
    "PRESETS",
    "parse_duration",
    "parse_size",
}


def test_public_names_are_exported() -> None:
    exported = set(agent.config.__all__)
    assert exported >= EXPECTED, EXPECTED - exported
    for name in exported:
        assert getattr(agent.config, name) is not None, name


def test_every_auth_model_is_in_the_union() -> None:
    for type_name, model in agent.config.AUTH_MODELS.items():
        assert model.model_fields["type"].default == type_name
        assert model.model_config.get("frozen") is True
        assert model.model_config.get("extra") == "forbid"


def test_config_imports_nothing_of_the_agent_but_errors() -> None:
    code = (
        "import sys, agent.config\n"
        "print('\\n'.join(m for m in sys.modules if m == 'agent' or m.startswith('agent.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(result.stdout.split())
    foreign = {
        m
        for m in modules
        if m not in ("agent", "agent.errors") and not m.startswith("agent.config")
    }
    assert foreign == set()
    assert "agent.errors" in modules
