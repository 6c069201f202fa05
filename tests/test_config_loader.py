"""Loading files: formats, defaults, every problem at once with its path, and cross-checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.config import (
    AzureAdAuth,
    Config,
    HeaderAuth,
    IntegrationConfig,
    OAuth2ClientCredentialsAuth,
    Secret,
    load_config,
    parse_config,
)
from agent.errors import ConfigError

# SPEC.md's example, verbatim except the caller token path (a real file here).
SPEC_EXAMPLE = """\
listen:
  grpc: "127.0.0.1:50051"
callers:
  - name: checkout
    token: ${file:CHECKOUT_TOKEN_FILE}
    allow: [openai, slack]
redis:
  url: redis://127.0.0.1:6379/0
  on_unavailable: local
integrations:
  openai:
    preset: openai
    base_url: https://api.openai.com/v1
    auth: {type: bearer, token: "${OPENAI_API_KEY}"}
    headers: {}
    timeout: 30s
    max_body: 10MiB
    allow_paths: []
    rate_limit:
      requests_per_second: 10
      burst: 20
      tokens_per_minute: 0
      max_wait: 2s
      scope: local
      adaptive: true
    circuit_breaker:
      failure_rate: 0.5
      minimum_calls: 10
      window: 30s
      open_for: 30s
      half_open_calls: 3
      slow_call_duration: 0s
    retry:
      max_attempts: 3
      initial_backoff: 100ms
      max_backoff: 5s
      on_status: [429, 502, 503, 504]
      respect_retry_after: true
    cache: {ttl: 0s}
    fallback: []
  slack:
    preset: slack
telemetry:
  audit_log: stdout
  propagate_trace_context: false
"""
ENV = {"OPENAI_API_KEY": "sk-test-openai-1234", "SLACK_BOT_TOKEN": "xoxb-test-5678"}


def _problems(error: ConfigError) -> dict[str, str]:
    return {problem.path: problem.message for problem in error.problems}


def _write_spec_example(tmp_path: Path) -> Path:
    token = tmp_path / "checkout.token"
    token.write_text("checkout-caller-token\n")
    config_file = tmp_path / "agent.yaml"
    config_file.write_text(SPEC_EXAMPLE.replace("CHECKOUT_TOKEN_FILE", str(token)))
    return config_file


def test_spec_example_loads(tmp_path: Path) -> None:
    config = load_config(_write_spec_example(tmp_path), env=ENV)
    assert config.listen.grpc == "127.0.0.1:50051"
    (caller,) = config.callers
    assert caller.name == "checkout"
    assert caller.token.get() == "checkout-caller-token"
    assert caller.allow == ("openai", "slack")
    assert config.redis is not None
    assert config.redis.on_unavailable == "local"
    openai = config.integrations["openai"]
    assert openai.timeout == 30.0
    assert openai.max_body == 10 * 1024 * 1024
    assert openai.rate_limit.requests_per_second == 10
    assert openai.rate_limit.burst == 20
    assert openai.rate_limit.max_wait == 2.0
    assert openai.retry.initial_backoff == pytest.approx(0.1)
    assert openai.retry.on_status == (429, 502, 503, 504)  # the user's list beats the preset's
    assert openai.circuit_breaker.window == 30.0
    assert openai.cache.ttl == 0.0
    assert not openai.cache.enabled
    assert openai.llm == "openai"  # from the preset
    assert config.integrations["slack"].base_url == "https://slack.com/api"
    assert config.telemetry.audit_log == "stdout"


def test_json_file_loads_the_same(tmp_path: Path) -> None:
    yaml_config = load_config(_write_spec_example(tmp_path), env=ENV)
    import yaml  # the YAML fixture, re-written as JSON

    data = yaml.safe_load((tmp_path / "agent.yaml").read_text())
    json_file = tmp_path / "agent.json"
    json_file.write_text(json.dumps(data, indent=2))
    assert load_config(json_file, env=ENV) == yaml_config


def test_defaults_are_specs() -> None:
    config = parse_config({"integrations": {"svc": {"base_url": "https://api.example.com"}}}, {})
    assert config.listen.grpc == "127.0.0.1:50051"
    assert config.server.grace_period == 20.0
    assert config.callers == ()
    assert config.redis is None
    assert config.telemetry.audit_log == "stdout"
    assert config.telemetry.propagate_trace_context is False
    svc = config.integrations["svc"]
    assert svc.auth.type == "none"
    assert svc.timeout == 30.0
    assert svc.max_body == 10 * 1024 * 1024
    assert svc.rate_limit.per_second is None  # no rate given: no limit
    assert svc.rate_limit.burst_size is None
    assert svc.rate_limit.max_wait == 2.0
    assert svc.rate_limit.scope == "local"
    assert svc.rate_limit.max_concurrent == 0
    assert svc.retry.max_attempts == 3
    assert svc.retry.on_status == (429, 502, 503, 504)
    assert svc.retry.budget == 0.2
    breaker = svc.circuit_breaker
    assert (breaker.failure_rate, breaker.minimum_calls, breaker.half_open_calls) == (0.5, 10, 3)
    assert breaker.is_failure_status(500)
    assert breaker.is_failure_status(503)
    assert not breaker.is_failure_status(429)
    assert not svc.transport.http2  # HTTP/1.1 through aiohttp unless asked
    assert svc.transport.verify
    assert (svc.transport.max_connections, svc.transport.max_keepalive_connections) == (64, 32)


def test_empty_file_is_a_valid_config(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing configured\n")
    config = load_config(empty, env={})
    assert config.integrations == {}
    assert config.listen.grpc == "127.0.0.1:50051"


def test_models_are_frozen() -> None:
    config = parse_config({"integrations": {"svc": {"base_url": "https://api.example.com"}}}, {})
    with pytest.raises(ValueError, match="frozen"):
        config.integrations["svc"].timeout = 1.0  # type: ignore[misc]


def test_yaml_one_point_one_surprises_are_avoided(tmp_path: Path) -> None:
    config_file = tmp_path / "agent.yml"
    config_file.write_text(
        "telemetry: {audit_log: off}\n"
        "integrations:\n"
        "  a: {base_url: 'https://api.example.com', headers: {anthropic-version: 2023-06-01}}\n"
    )
    config = load_config(config_file, env={})
    assert config.telemetry.audit_log == "off"
    assert config.integrations["a"].headers == {"anthropic-version": "2023-06-01"}


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad.yaml", "integrations:\n  a: {base_url: x\n  b: 1\n", "line 3, column "),
        ("bad.yaml", "listen:\n  grpc: [unclosed\n", "line 3, column 1"),
        ("bad.json", '{\n  "listen": {"grpc": "x",}\n}\n', "line 2, column 26"),
        ("bad.json", '{"listen": 1,\n "listen": 2}', "appears twice"),
        ("dup.yaml", "listen: {grpc: a}\nlisten: {grpc: b}\n", "line 2, column 1: key 'listen'"),
    ],
)
def test_parse_errors_name_line_and_column(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert where in str(info.value)
    assert info.value.source == str(path)


def test_parse_errors_do_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text('auth: {token: "sk-very-secret-value\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "sk-very-secret" not in str(info.value)


def test_missing_file_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listing, env={})


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (
            {"integratoins": {}},
            "integratoins",
            "unknown key 'integratoins'; did you mean 'integrations'?",
        ),
        (
            {"integrations": {"a": {"base_url": "https://x.io", "timout": "5s"}}},
            "integrations.a.timout",
            "unknown key 'timout'; did you mean 'timeout'?",
        ),
        (
            {"integrations": {"a": {"base_url": "https://x.io", "retry": {"max_atempts": 2}}}},
            "integrations.a.retry.max_atempts",
            "did you mean 'max_attempts'?",
        ),
        (
            {
                "integrations": {
                    "a": {
                        "base_url": "https://x.io",
                        "auth": {"type": "header", "header": "k", "valeu": "v"},
                    }
                }
            },
            "integrations.a.auth.valeu",
            "did you mean 'value'?",
        ),
        (
            {"callers": [{"name": "c", "tokn": "t"}]},
            "callers[0].tokn",
            "did you mean 'token'?",
        ),
        (
            {
                "integrations": {
                    "a": {"base_url": "https://x.io", "auth": {"type": "bearr", "token": "t"}}
                }
            },
            "integrations.a.auth",
            "unknown type 'bearr'; did you mean 'bearer'?",
        ),
    ],
)
def test_unknown_keys_suggest_the_closest(data: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, {})
    problems = _problems(info.value)
    assert path in problems, problems
    assert message in problems[path]


def test_all_problems_at_once(tmp_path: Path) -> None:
    path = tmp_path / "four.yaml"
    path.write_text(
        "integrations:\n"
        "  openai:\n"
        "    base_url: https://api.openai.com/v1\n"
        "    timout: 30s\n"  # 1: unknown key
        "    auth: {type: bearer, token: '${MISSING_KEY}'}\n"  # 2: missing variable
        "    rate_limit: {max_wait: soon}\n"  # 3: bad duration
        "    fallback: [anthropic]\n"  # 4: unknown fallback
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    problems = _problems(info.value)
    assert set(problems) == {
        "integrations.openai.timout",
        "integrations.openai.auth.token",
        "integrations.openai.rate_limit.max_wait",
        "integrations.openai.fallback[0]",
    }
    assert len(info.value.problems) == 4
    assert "MISSING_KEY is not set" in problems["integrations.openai.auth.token"]
    assert "250ms" in problems["integrations.openai.rate_limit.max_wait"]
    assert "no integration named 'anthropic'" in problems["integrations.openai.fallback[0]"]
    text = str(info.value)
    assert text.startswith(f"invalid configuration in {path} (4 problem(s)):")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout", 0, "must be greater than 0"),
        ("timeout", "-2s", "must not be negative"),
        ("max_body", "lots", "is not a size"),
        ("base_url", "api.example.com", "absolute http:// or https:// URL"),
        ("base_url", "https://user:pw@api.example.com", "must not carry credentials"),
        ("base_url", "https://api.example.com/v1?key=abc", "must not have a ?query"),
        ("base_url", "https://api.exa mple.com", "must not contain spaces"),
        ("base_url", "https://api.example.com:99999", "is not a valid URL"),
        ("allow_paths", ["/ok", "models"], "allow_paths[1]: is not a path prefix"),
        ("allow_paths", ["/a/../b"], "allow_paths[0]: must not contain '..'"),
        ("headers", {"Bad Header": "x"}, "headers.Bad Header: is not a valid HTTP header name"),
        ("headers", {"X-A": "line\r\nInjected: 1"}, "headers.X-A: contains CR, LF or NUL"),
        ("headers", {"Host": "evil.example"}, "headers.Host: is managed by the agent"),
        ("headers", {"X-A": "1", "x-a": "2"}, "'x-a' is given twice"),
        ("fallback", ["b", "b"], "lists an integration twice"),
        ("transport", {"max_connections": 4, "max_keepalive_connections": 8}, "must not exceed"),
        ("retry", {"initial_backoff": "10s", "max_backoff": "1s"}, "must not be smaller"),
        ("circuit_breaker", {"failure_rate": 1.5}, "must be at most 1"),
        ("rate_limit", {"scope": "cluster"}, "must be one of 'local' or 'global'"),
        ("rate_limit", {"adaptive": "maybe"}, "must be true or false"),
        ("retry", {"on_status": [99]}, "must be at least 100"),
    ],
)
def test_field_validation_messages(field: str, value: object, message: str) -> None:
    entry: dict[str, object] = {"base_url": "https://api.example.com", field: value}
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"a": entry, "b": {"base_url": "https://b.example"}}}, {})
    text = "\n".join(str(problem) for problem in info.value.problems)
    assert f"integrations.a.{field}" in text
    assert message in text
    assert "Input should be" not in text


def test_rate_limit_takes_one_unit() -> None:
    limit = {"requests_per_second": 1, "requests_per_minute": 60}
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"a": {"base_url": "https://x.io", "rate_limit": limit}}}, {})
    assert _problems(info.value) == {
        "integrations.a.rate_limit.requests_per_minute": "give requests_per_second or "
        "requests_per_minute, not both"
    }
    config = parse_config(
        {
            "integrations": {
                "a": {"base_url": "https://x.io", "rate_limit": {"requests_per_minute": 120}}
            }
        },
        {},
    )
    limit = config.integrations["a"].rate_limit
    assert limit.per_second == 2.0
    assert limit.burst_size == 2  # one second's worth by default


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("127.0.0.1:50051", True),
        ("0.0.0.0:0", True),
        ("[::1]:50051", True),
        ("[::]:7000", True),
        ("localhost:8080", True),
        ("unix:///run/kilo/agent.sock", True),
        ("unix:agent.sock", True),
        ("50051", False),
        (":50051", False),
        ("localhost", False),
        ("127.0.0.1:99999", False),
        ("::1:50051", False),
        ("[::1:50051", False),
        ("[nope]:1", False),
        ("unix://", False),
        ("bad host:1", False),
    ],
)
def test_listen_addresses(address: str, ok: bool) -> None:
    data = {"listen": {"grpc": address}}
    if ok:
        assert parse_config(data, {}).listen.grpc == address
    else:
        with pytest.raises(ConfigError) as info:
            parse_config(data, {})
        assert list(_problems(info.value)) == ["listen.grpc"]


@pytest.mark.parametrize(
    ("token_url", "ok"),
    [
        ("https://login.example.com/oauth/token", True),
        ("http://127.0.0.1:8080/token", True),
        ("http://127.8.9.10/token", True),
        ("http://localhost:9000/token", True),
        ("http://[::1]:9000/token", True),
        ("http://login.example.com/oauth/token", False),
        ("http://10.0.0.5/token", False),
        ("ftp://login.example.com/token", False),
        ("/token", False),
    ],
)
def test_token_urls_must_be_https_except_on_loopback(token_url: str, ok: bool) -> None:
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": token_url,
        "client_id": "id",
        "client_secret": "s3cret-value",
    }
    data = {"integrations": {"a": {"base_url": "https://api.example.com", "auth": auth}}}
    if ok:
        config = parse_config(data, {})
        assert isinstance(config.integrations["a"].auth, OAuth2ClientCredentialsAuth)
    else:
        with pytest.raises(ConfigError) as info:
            parse_config(data, {})
        assert list(_problems(info.value)) == ["integrations.a.auth.token_url"]


def test_https_rule_covers_every_token_endpoint() -> None:
    auths = {
        "r": {
            "type": "oauth2_refresh_token",
            "token_url": "http://idp.example.com/token",
            "client_id": "c",
            "refresh_token": "r",
        },
        "g": {
            "type": "github_app",
            "app_id": 1,
            "private_key": "k",
            "installation_id": 2,
            "api_url": "http://github.example.com/api/v3",
        },
        "z": {
            "type": "azure_ad",
            "tenant_id": "t",
            "client_id": "c",
            "client_secret": "s",
            "scope": "https://management.azure.com/.default",
            "authority": "http://login.example.com",
        },
    }
    data = {"integrations": {n: {"base_url": "https://x.io", "auth": a} for n, a in auths.items()}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, {})
    problems = _problems(info.value)
    assert set(problems) == {
        "integrations.r.auth.token_url",
        "integrations.g.auth.api_url",
        "integrations.z.auth.authority",
    }
    assert all("must use https://" in message for message in problems.values())


def test_auth_models_and_their_injected_headers() -> None:
    config = parse_config(
        {
            "integrations": {
                "h": {
                    "base_url": "https://x.io",
                    "auth": {"type": "header", "header": "X-Api-Key", "value": "k"},
                },
                "z": {
                    "base_url": "https://x.io",
                    "auth": {
                        "type": "azure_ad",
                        "tenant_id": "t",
                        "client_id": "c",
                        "federated_token_file": "/var/run/secrets/azure/tokens/token",
                        "scope": "https://management.azure.com/.default",
                    },
                },
                "s": {
                    "base_url": "https://s3.us-east-1.amazonaws.com",
                    "auth": {
                        "type": "aws_sigv4",
                        "region": "us-east-1",
                        "service": "s3",
                        "role_arn": "arn:aws:iam::123456789012:role/app",
                        "web_identity_token_file": "/var/run/secrets/eks/token",
                    },
                },
                "k": {"base_url": "https://kubernetes.default.svc", "auth": {"type": "kubernetes"}},
                "n": {"base_url": "https://x.io"},
            }
        },
        {},
    )
    integrations = config.integrations
    assert isinstance(integrations["h"].auth, HeaderAuth)
    assert integrations["h"].auth.secret_header() == "x-api-key"
    assert isinstance(integrations["z"].auth, AzureAdAuth)
    assert integrations["z"].auth.authority == "https://login.microsoftonline.com"
    assert integrations["z"].auth.secret_header() == "authorization"
    assert "x-amz-security-token" in integrations["s"].auth.injected_headers()
    assert integrations["k"].auth.token_file.endswith("serviceaccount/token")  # type: ignore[union-attr]
    assert integrations["n"].auth.secret_header() is None


@pytest.mark.parametrize(
    ("auth", "path", "message"),
    [
        (
            {"type": "azure_ad", "tenant_id": "t", "client_id": "c", "scope": "s"},
            "integrations.a.auth.client_secret",
            "exactly one of client_secret and federated_token_file",
        ),
        (
            {
                "type": "azure_ad",
                "tenant_id": "t",
                "client_id": "c",
                "scope": "s",
                "client_secret": "x",
                "federated_token_file": "/f",
            },
            "integrations.a.auth.client_secret",
            "exactly one",
        ),
        (
            {"type": "aws_sigv4", "region": "r", "service": "s"},
            "integrations.a.auth.access_key_id",
            "give access_key_id + secret_access_key, or role_arn",
        ),
        (
            {
                "type": "aws_sigv4",
                "region": "r",
                "service": "s",
                "access_key_id": "AKIA",
                "secret_access_key": "x",
                "role_arn": "arn",
                "web_identity_token_file": "/t",
            },
            "integrations.a.auth.role_arn",
            "not both",
        ),
        (
            {"type": "aws_sigv4", "region": "r", "service": "s", "access_key_id": "AKIA"},
            "integrations.a.auth.secret_access_key",
            "is required with static keys",
        ),
        ({"type": "bearer"}, "integrations.a.auth.token", "is required"),
        ({"token": "x"}, "integrations.a.auth", "needs a 'type' key"),
        (
            {"type": "basic", "username": "a:b", "password": "p"},
            "integrations.a.auth.username",
            "must not contain ':'",
        ),
    ],
)
def test_auth_problems(auth: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"a": {"base_url": "https://x.io", "auth": auth}}}, {})
    problems = _problems(info.value)
    assert path in problems, problems
    assert message in problems[path]


def test_static_header_may_not_shadow_the_credential() -> None:
    entry = {
        "base_url": "https://x.io",
        "auth": {"type": "bearer", "token": "t"},
        "headers": {"authorization": "Bearer other"},
    }
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"a": entry}}, {})
    assert "is set by auth (type bearer)" in _problems(info.value)["integrations.a.headers"]


def test_cross_checks() -> None:
    data = {
        "callers": [
            {"name": "web", "token": "token-web-1", "allow": ["a", "ghost"]},
            {"name": "web", "token": "token-web-1"},
        ],
        "integrations": {
            "a": {"base_url": "https://a.io", "fallback": ["a", "nowhere"]},
            "b": {
                "base_url": "https://b.io",
                "rate_limit": {
                    "scope": "global",
                    "requests_per_second": 5,
                    "per_caller": {
                        "web": {"requests_per_second": 1},
                        "cron": {"requests_per_minute": 6},
                    },
                },
            },
        },
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, {})
    problems = _problems(info.value)
    assert set(problems) == {
        "callers[0].allow[1]",
        "callers[1].name",
        "callers[1].token",
        "integrations.a.fallback[0]",
        "integrations.a.fallback[1]",
        "integrations.b.rate_limit.scope",
        "integrations.b.rate_limit.per_caller.cron",
    }
    assert "same token as callers[0]" in problems["callers[1].token"]
    assert "token-web-1" not in str(info.value)
    assert "cannot fall back to itself" in problems["integrations.a.fallback[0]"]
    assert "needs a shared Redis" in problems["integrations.b.rate_limit.scope"]


def test_cross_checks_still_see_integrations_that_failed() -> None:
    data = {
        "integrations": {
            "a": {"base_url": "not a url", "fallback": ["ghost"]},
            "b": {"base_url": "https://b.io", "fallback": ["a"]},  # 'a' exists, though invalid
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, {})
    assert set(_problems(info.value)) == {"integrations.a.base_url", "integrations.a.fallback[0]"}


def test_global_scope_with_redis_is_fine() -> None:
    data = {
        "redis": {"url": "redis://:pw@127.0.0.1:6379/0", "on_unavailable": "deny"},
        "callers": [{"name": "web", "token": "t1"}],
        "integrations": {
            "a": {
                "base_url": "https://a.io",
                "rate_limit": {
                    "scope": "global",
                    "per_caller": {"web": {"requests_per_minute": 6}},
                },
            }
        },
    }
    config = parse_config(data, {})
    assert config.redis is not None
    assert config.redis.url.get() == "redis://:pw@127.0.0.1:6379/0"
    assert config.redis.display_url() == "redis://:***@127.0.0.1:6379/0"
    assert config.integrations["a"].rate_limit.per_caller["web"].per_second == pytest.approx(0.1)
    assert config.caller_by_token("t1") is config.callers[0]
    assert config.caller_by_token("t2") is None
    assert config.callers[0].allows("a")


def test_bad_integration_names_and_shapes() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"-bad": {"base_url": "https://x.io"}, "ok": "nope"}}, {})
    problems = _problems(info.value)
    assert "must start with a letter or digit" in problems["integrations.-bad"]
    assert problems["integrations.ok"] == "must be a mapping of keys to values, not a string"


def test_webhook_integrations_derive_a_safe_base_url() -> None:
    url = "https://hooks.slack.com/services/T0001/B0001/s3cr3tPart"
    config = parse_config({"integrations": {"hook": {"webhook_url": url}}}, {})
    hook = config.integrations["hook"]
    assert isinstance(hook.webhook_url, Secret)
    assert hook.base_url == "https://hooks.slack.com"
    assert hook.effective_base_url() == url
    assert hook.display_base_url() == "https://hooks.slack.com/***"
    assert "s3cr3tPart" not in repr(hook)
    for bad in ("http://hooks.slack.com/services/x", "hooks.slack.com/services/x"):
        with pytest.raises(ConfigError) as info:
            parse_config({"integrations": {"hook": {"webhook_url": bad}}}, {})
        assert list(_problems(info.value)) == ["integrations.hook.webhook_url"]
        assert "services/x" not in str(info.value)


def test_config_built_in_code_runs_the_cross_checks() -> None:
    integration = IntegrationConfig(base_url="https://x.io", fallback=("ghost",))
    with pytest.raises(ValueError, match=r"integrations\.a\.fallback\[0\]: no integration named"):
        Config(integrations={"a": integration})
