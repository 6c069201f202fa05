"""Resilience policies: pure logic plus asyncio, time behind an injectable ``Clock``.

One module per pattern (``limiter``, ``breaker``, ``retry``, ``cache``, ``upstream_limits``,
``tokens``, ``clock``); this package re-exports their public names. Policies import only the
standard library, ``agent.errors`` and ``agent.events``; they never import gRPC, OpenTelemetry or
the configuration models (the engine builds them from config with explicit keyword arguments).

The engine applies them in this order for one call (see DESIGN.md)::

    cache lookup -> breaker.allow() -> limiter.acquire() -> [attempt -> limiter.observe(),
    breaker.record(), retry.decide()]* -> permit.correct(usage), permit.release() -> cache store
"""

from agent.policies.breaker import DEFAULT_FAILURE_STATUS, CircuitBreaker, CircuitState, is_failure
from agent.policies.cache import (
    CACHEABLE_METHODS,
    CACHEABLE_STATUS,
    CachedResponse,
    CacheKey,
    ResponseCache,
    SingleFlight,
    cache_key,
    freshness,
    request_allows_cache,
)
from agent.policies.clock import SYSTEM_CLOCK, Clock, FakeClock, MonotonicClock, Timer
from agent.policies.limiter import (
    CallerLimit,
    GcraBucket,
    Limiter,
    LocalLimiter,
    Permit,
    UnlimitedLimiter,
    gcra_reserve,
)
from agent.policies.retry import (
    IDEMPOTENT_METHODS,
    RetryBudget,
    RetryDecision,
    RetryPolicy,
    is_retryable_error,
)
from agent.policies.tokens import (
    BYTES_PER_TOKEN,
    SSEUsage,
    TokenUsage,
    estimate_tokens,
    extract_usage,
    read_answer,
)
from agent.policies.upstream_limits import (
    PARSER_KINDS,
    SignalParser,
    UpstreamSignal,
    lower_headers,
    parse_retry_after,
    parse_signal,
    parser_for,
)

__all__ = [
    "BYTES_PER_TOKEN",
    "CACHEABLE_METHODS",
    "CACHEABLE_STATUS",
    "DEFAULT_FAILURE_STATUS",
    "IDEMPOTENT_METHODS",
    "PARSER_KINDS",
    "SYSTEM_CLOCK",
    "CacheKey",
    "CachedResponse",
    "CallerLimit",
    "CircuitBreaker",
    "CircuitState",
    "Clock",
    "FakeClock",
    "GcraBucket",
    "Limiter",
    "LocalLimiter",
    "MonotonicClock",
    "Permit",
    "ResponseCache",
    "RetryBudget",
    "RetryDecision",
    "RetryPolicy",
    "SSEUsage",
    "SignalParser",
    "SingleFlight",
    "Timer",
    "TokenUsage",
    "UnlimitedLimiter",
    "UpstreamSignal",
    "cache_key",
    "estimate_tokens",
    "extract_usage",
    "freshness",
    "gcra_reserve",
    "is_failure",
    "is_retryable_error",
    "lower_headers",
    "parse_retry_after",
    "parse_signal",
    "parser_for",
    "read_answer",
    "request_allows_cache",
]
