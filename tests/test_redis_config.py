"""``redis:`` settings of issue 8: defaults, validation located at its path, secrets kept, and the
engine building a RedisLimiter for ``scope: global`` only when given the runtime."""

from __future__ import annotations

import pytest

from agent.config import parse_config
from agent.config.redact import redacted_dump
from agent.engine.build import build_limiter
from agent.errors import ConfigError, ConfigProblem
from agent.events import EventHub
from agent.policies import LocalLimiter
from agent.redis import RedisLimiter, RedisRuntime

KEY = "0123456789abcdef-cache-key"


def _problems(error: ConfigError) -> dict[str, str]:
    return {problem.path: problem.message for problem in error.problems}


def _config(**redis: object) -> dict[str, object]:
    return {
        "redis": {"url": "redis://127.0.0.1:6379/0", **redis},
        "integrations": {
            "g": {
                "base_url": "https://g.io",
                "rate_limit": {"requests_per_second": 10, "burst": 20, "scope": "global"},
            },
            "l": {"base_url": "https://l.io", "rate_limit": {"requests_per_second": 10}},
        },
    }


def test_defaults_are_short_timeouts_a_small_share_and_no_token_cache() -> None:
    redis = parse_config(_config(), {}).redis
    assert redis is not None
    assert redis.on_unavailable == "local"
    assert redis.local_share == 0.1
    assert redis.connect_timeout == 0.25
    assert redis.timeout == 0.25
    assert redis.key_prefix == "kilo:"
    assert redis.token_cache_key is None


def test_every_setting_is_read_and_the_cache_key_stays_secret() -> None:
    env = {"KILO_CACHE_KEY": KEY}
    config = parse_config(
        _config(
            on_unavailable="deny",
            local_share=0.25,
            connect_timeout="100ms",
            timeout="50ms",
            key_prefix="team-a:",
            token_cache_key="${env:KILO_CACHE_KEY}",
        ),
        env,
    )
    redis = config.redis
    assert redis is not None
    assert (redis.on_unavailable, redis.local_share) == ("deny", 0.25)
    assert (redis.connect_timeout, redis.timeout, redis.key_prefix) == (0.1, 0.05, "team-a:")
    assert redis.token_cache_key is not None
    assert redis.token_cache_key.get() == KEY
    assert KEY not in repr(redis)
    assert KEY not in str(redacted_dump(config))


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("local_share", 0, "greater than 0"),
        ("local_share", 1.5, "at most 1"),
        ("timeout", "0s", "greater than 0"),
        ("connect_timeout", "1m", "at most 30"),
        ("key_prefix", "a{b}", "braces"),
        ("token_cache_key", "tiny-k3y", "at least 16"),
        ("on_unavailable", "queue", "'local' or 'deny'"),
    ],
)
def test_bad_values_are_reported_at_their_path(setting: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(**{setting: value}), {})
    problems = _problems(info.value)
    assert message in problems[f"redis.{setting}"], problems
    assert "tiny-k3y" not in str(info.value)  # a secret is never echoed


def test_global_scope_builds_a_redis_limiter_and_local_scope_stays_local() -> None:
    config = parse_config(_config(local_share=0.5), {})
    assert config.redis is not None
    runtime = RedisRuntime(config.redis)
    hub = EventHub()
    global_limiter = build_limiter("g", config.integrations["g"], hub, redis=runtime)
    assert isinstance(global_limiter, RedisLimiter)
    # the fallback holds the local share of the global limit
    assert global_limiter.fallback._requests is not None
    assert global_limiter.fallback._requests.interval == pytest.approx(1 / 5)
    assert global_limiter.fallback._requests.burst == 10
    assert isinstance(
        build_limiter("l", config.integrations["l"], hub, redis=runtime), LocalLimiter
    )


def test_global_scope_without_the_runtime_is_a_located_config_error() -> None:
    config = parse_config(_config(), {})
    with pytest.raises(ConfigError) as info:
        build_limiter("g", config.integrations["g"], EventHub())
    (problem,) = info.value.problems
    assert problem == ConfigProblem(problem.path, problem.message)
    assert problem.path == "integrations.g.rate_limit.scope"
    assert "needs the shared Redis" in problem.message
