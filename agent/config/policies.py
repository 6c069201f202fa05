"""Per-integration policy settings: rate limit, circuit breaker, retry and cache.

Field names and defaults are SPEC.md's; durations are float seconds (strings like ``2s`` accepted).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from .base import FrozenModel, field_error
from .units import Duration

__all__ = [
    "CacheConfig",
    "CallerRateLimit",
    "CircuitBreakerConfig",
    "RateLimitConfig",
    "RetryConfig",
]

_Rate = Annotated[float, Field(gt=0)]
_Status = Annotated[int, Field(ge=100, le=599)]


def _one_rate(rps: float | None, rpm: float | None) -> None:
    if rps is not None and rpm is not None:
        raise field_error(
            "requests_per_minute",
            "give requests_per_second or requests_per_minute, not both",
        )


class CallerRateLimit(FrozenModel):
    """A sub-limit for one caller inside an integration's limit (``rate_limit.per_caller``)."""

    requests_per_second: _Rate | None = None
    requests_per_minute: _Rate | None = None
    burst: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _rate(self) -> Self:
        _one_rate(self.requests_per_second, self.requests_per_minute)
        if self.requests_per_second is None and self.requests_per_minute is None:
            raise field_error(
                "requests_per_second",
                "a per-caller limit needs requests_per_second or requests_per_minute",
            )
        return self

    @property
    def per_second(self) -> float:
        """The rate in requests per second, whichever unit was written."""
        if self.requests_per_second is not None:
            return self.requests_per_second
        return (self.requests_per_minute or 0.0) / 60.0

    @property
    def burst_size(self) -> int:
        """``burst``, or by default one second's worth of requests (at least 1)."""
        return self.burst if self.burst is not None else max(1, math.ceil(self.per_second))


class RateLimitConfig(FrozenModel):
    """Client-side limit of calls (and LLM tokens) to one integration; no rate = no limit.

    ``burst`` defaults (when None) to the rate of one second, at least 1; ``max_concurrent`` caps
    calls in flight (0 = unlimited); ``adaptive`` also obeys the upstream's rate-limit headers and
    ``Retry-After``.
    """

    requests_per_second: _Rate | None = None
    requests_per_minute: _Rate | None = None
    burst: Annotated[int, Field(ge=1)] | None = None
    tokens_per_minute: Annotated[int, Field(ge=0)] = 0
    max_wait: Annotated[Duration, Field(ge=0)] = 2.0
    scope: Literal["local", "global"] = "local"
    adaptive: bool = True
    max_concurrent: Annotated[int, Field(ge=0)] = 0
    per_caller: dict[str, CallerRateLimit] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _rate(self) -> Self:
        _one_rate(self.requests_per_second, self.requests_per_minute)
        return self

    @property
    def per_second(self) -> float | None:
        """Requests per second, whichever unit was written; None when there is no rate limit."""
        if self.requests_per_second is not None:
            return self.requests_per_second
        if self.requests_per_minute is not None:
            return self.requests_per_minute / 60.0
        return None

    @property
    def burst_size(self) -> int | None:
        """``burst``, or by default one second's worth of requests (at least 1); None = no limit."""
        rate = self.per_second
        if rate is None:
            return None
        return self.burst if self.burst is not None else max(1, math.ceil(rate))


class CircuitBreakerConfig(FrozenModel):
    """When to stop calling a failing upstream (open), and how to probe it again (half-open).

    What counts as a failure: connect/TLS/reset errors and timeouts always; an HTTP answer when
    ``failure_on_5xx`` and its status is 5xx, or when its status is listed in ``failure_status``
    (e.g. ``[429]`` to open on sustained throttling). Calls slower than ``slow_call_duration``
    also count when it is above 0.
    """

    enabled: bool = True
    failure_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    minimum_calls: Annotated[int, Field(ge=1)] = 10
    window: Annotated[Duration, Field(gt=0)] = 30.0
    open_for: Annotated[Duration, Field(gt=0)] = 30.0
    half_open_calls: Annotated[int, Field(ge=1)] = 3
    slow_call_duration: Annotated[Duration, Field(ge=0)] = 0.0
    failure_on_5xx: bool = True
    failure_status: tuple[_Status, ...] = ()

    def is_failure_status(self, status: int) -> bool:
        """Whether an upstream answer with this status counts as a failure."""
        return (self.failure_on_5xx and 500 <= status <= 599) or status in self.failure_status


class RetryConfig(FrozenModel):
    """Retries of one call: exponential backoff with full jitter, within a retry budget.

    ``budget`` is the share of an integration's calls that may be retries (0.2 = at most one retry
    for five calls, over a sliding window), so retries cannot multiply an outage.
    """

    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    initial_backoff: Annotated[Duration, Field(ge=0)] = 0.1
    max_backoff: Annotated[Duration, Field(ge=0)] = 5.0
    on_status: tuple[_Status, ...] = (429, 502, 503, 504)
    respect_retry_after: bool = True
    budget: Annotated[float, Field(ge=0, le=1)] = 0.2

    @field_validator("on_status")
    @classmethod
    def _unique(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.max_backoff < self.initial_backoff:
            raise field_error("max_backoff", "must not be smaller than initial_backoff")
        return self


class CacheConfig(FrozenModel):
    """Caching of GET/HEAD answers; ``ttl: 0`` turns it off."""

    ttl: Annotated[Duration, Field(ge=0)] = 0.0
    max_entries: Annotated[int, Field(ge=1)] = 1024

    @property
    def enabled(self) -> bool:
        """True when answers are cached."""
        return self.ttl > 0
