"""Builds one integration's policies from its validated config, once, at start-up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError, ConfigProblem
from agent.events import EventHub
from agent.policies import (
    SYSTEM_CLOCK,
    CallerLimit,
    CircuitBreaker,
    Clock,
    Limiter,
    LocalLimiter,
    ResponseCache,
    RetryBudget,
    RetryPolicy,
    UnlimitedLimiter,
)

if TYPE_CHECKING:
    from agent.redis import RedisRuntime

__all__ = ["build_breaker", "build_cache", "build_limiter", "build_retry"]

# Enough for typical JSON answers of list/read endpoints; bodies bigger than this aren't cached.
_CACHE_BYTES_PER_ENTRY = 16 * 1024


def build_limiter(
    name: str,
    cfg: Any,
    hub: EventHub,
    clock: Clock = SYSTEM_CLOCK,
    *,
    redis: RedisRuntime | None = None,
    local_share: float = 1.0,
) -> Limiter:
    """The integration's limiter; one that never waits when nothing limits it.

    ``scope: global`` keeps it in ``redis`` (a ``RedisLimiter``, same semantics, shared by every
    agent on that Redis); ``max_concurrent`` stays per agent either way. ``local_share`` is this
    process's part of a ``scope: local`` limit (``1/N`` for each of ``serve --workers N``).
    """
    rl = cfg.rate_limit
    rate = rl.per_second
    callers = {
        caller: CallerLimit(limit.per_second, limit.burst_size)
        for caller, limit in rl.per_caller.items()
    }
    settings: dict[str, Any] = {
        "requests_per_second": rate,
        "burst": rl.burst_size or 1,
        "max_wait": rl.max_wait,
        "max_concurrent": rl.max_concurrent,
        "tokens_per_minute": rl.tokens_per_minute,
        "caller_limits": callers,
        "adaptive": rl.adaptive,
        "clock": clock,
        "hub": hub,
    }
    if rl.scope == "global":
        if redis is None:
            raise ConfigError(
                [
                    ConfigProblem(
                        f"integrations.{name}.rate_limit.scope",
                        "scope 'global' needs the shared Redis, and none was given to the "
                        "engine: add a top-level redis: {url: redis://host:6379/0}, or use "
                        "scope: local (each agent enforces the limit on its own)",
                    )
                ]
            )
        return redis.limiter(name, **settings)
    limits = rate is not None or rl.tokens_per_minute or rl.max_concurrent or rl.per_caller
    if not limits and not rl.adaptive:
        return UnlimitedLimiter()
    return LocalLimiter.share_of(local_share, integration=name, **settings)


def build_breaker(
    name: str, cfg: Any, hub: EventHub, clock: Clock = SYSTEM_CLOCK
) -> CircuitBreaker | None:
    cb = cfg.circuit_breaker
    if not cb.enabled:
        return None
    return CircuitBreaker(
        integration=name,
        failure_rate=cb.failure_rate,
        minimum_calls=cb.minimum_calls,
        window=cb.window,
        open_for=cb.open_for,
        half_open_calls=cb.half_open_calls,
        slow_call_duration=cb.slow_call_duration,
        clock=clock,
        hub=hub,
    )


def build_retry(name: str, cfg: Any, hub: EventHub, clock: Clock = SYSTEM_CLOCK) -> RetryPolicy:
    r = cfg.retry
    return RetryPolicy(
        integration=name,
        max_attempts=r.max_attempts,
        initial_backoff=r.initial_backoff,
        max_backoff=r.max_backoff,
        on_status=r.on_status,
        respect_retry_after=r.respect_retry_after,
        budget=RetryBudget(ratio=r.budget, clock=clock) if r.max_attempts > 1 else None,
        clock=clock,
        hub=hub,
    )


def build_cache(cfg: Any, clock: Clock = SYSTEM_CLOCK) -> ResponseCache | None:
    c = cfg.cache
    if not c.enabled:
        return None
    return ResponseCache(
        ttl=c.ttl, max_bytes=max(1, c.max_entries) * _CACHE_BYTES_PER_ENTRY, clock=clock
    )
