"""Small frozen events published by the call path, policies and credentials; telemetry subscribes.

Publishers never know who listens (policies never import OpenTelemetry). Subscribers are plain
callables run inline, so they must be cheap and must not block: record a metric, enqueue an audit
line. A subscriber that raises is logged once per event type and never breaks the publisher.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

__all__ = [
    "BreakerStateChanged",
    "CacheLookup",
    "CallFinished",
    "CredentialRefreshed",
    "CredentialStateChanged",
    "EventHub",
    "FallbackUsed",
    "LlmUsage",
    "RateLimitRejected",
    "RateLimitWaited",
    "RedisStateChanged",
    "RetryScheduled",
    "UpstreamAttempt",
    "UpstreamHold",
]

_log = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class UpstreamAttempt:
    """One HTTP attempt to an upstream finished (with a status, or with an error type)."""

    integration: str
    method: str
    status: int  # 0 when no response arrived
    duration: float  # seconds
    attempt: int  # 1-based
    error_type: str = ""


@dataclass(frozen=True, slots=True)
class CallFinished:
    """One gRPC call finished: the audit log's and the call metrics' source."""

    integration: str
    caller: str
    method: str
    endpoint: str  # path without its query
    status: int  # upstream HTTP status; 0 when the agent answered with an error
    outcome: str  # "ok", "upstream_error", or the error reason (e.g. "RATE_LIMITED")
    duration: float  # seconds, whole call
    attempts: int
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class BreakerStateChanged:
    """An integration's circuit breaker moved between CLOSED, OPEN and HALF_OPEN."""

    integration: str
    old: str  # "CLOSED" | "OPEN" | "HALF_OPEN"
    new: str
    failure_rate: float = 0.0  # share of failed calls in the window that decided it (0..1)
    slow_call_rate: float = 0.0  # share of slow calls in that window (0..1)


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """The call will be sent again after ``delay`` seconds."""

    integration: str
    attempt: int  # the attempt that just failed, 1-based
    delay: float  # seconds until the next attempt
    reason: str  # the status code ("503") or the error type ("UpstreamUnreachable")
    from_retry_after: bool = False  # the delay came from the upstream's Retry-After


@dataclass(frozen=True, slots=True)
class RateLimitRejected:
    """The limiter refused a call that could not start within ``max_wait`` or its deadline."""

    integration: str
    caller: str
    retry_after: float  # seconds until a slot frees
    reason: str  # "max_wait" | "deadline" | "caller_limit" | "concurrency"


@dataclass(frozen=True, slots=True)
class UpstreamHold:
    """The upstream's own rate-limit signals made the limiter hold calls ``hold_for`` seconds."""

    integration: str
    key: str  # "" = the whole integration; else a route or the upstream's bucket id
    hold_for: float
    source: str  # "retry_after" | "exhausted"


class EventHub:
    """Publish/subscribe by event type; publishing with no subscribers costs one dict lookup."""

    def __init__(self) -> None:
        self._subscribers: dict[type[Any], list[Callable[[Any], None]]] = defaultdict(list)
        self._failed: set[type[Any]] = set()

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        """Call ``handler`` inline for every published event of ``event_type``."""
        self._subscribers[event_type].append(handler)

    def has_subscribers(self, event_type: type[Any]) -> bool:
        """Lets publishers skip building an event nobody reads."""
        return bool(self._subscribers.get(event_type))

    def publish(self, event: object) -> None:
        """Deliver ``event`` to its subscribers; a failing subscriber is logged, never raised."""
        handlers = self._subscribers.get(type(event))
        if not handlers:
            return
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                if type(event) not in self._failed:
                    self._failed.add(type(event))
                    _log.exception("event subscriber failed for %s", type(event).__name__)


@dataclass(frozen=True, slots=True)
class CredentialRefreshed:
    """One attempt to obtain or refresh an integration's credential finished."""

    integration: str
    ok: bool
    expires_at: datetime | None  # of the new credential; None when unknown or on failure
    reason: str = ""  # why it failed (safe to show: never the secret); "" when ok
    trigger: str = ""  # "start" | "scheduled" | "expired" | "rejected" | "retry"
    duration: float = 0.0  # seconds spent at the token endpoint


@dataclass(frozen=True, slots=True)
class CredentialStateChanged:
    """An integration's credential moved between pending, valid, degraded and failed.

    ``degraded``: refreshing fails but the current credential is still valid; ``failed``: no valid
    credential, calls get CREDENTIALS_UNAVAILABLE.
    """

    integration: str
    old: str
    new: str
    reason: str = ""  # safe to show: never the secret


@dataclass(frozen=True, slots=True)
class FallbackUsed:
    """A call moved on from ``integration`` to the next one of its ``fallback`` list."""

    integration: str
    fallback: str
    reason: str  # an error reason (e.g. "CIRCUIT_OPEN", "RATE_LIMITED") or the HTTP status


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """A cacheable call looked in its integration's cache (``hit``) or went upstream."""

    integration: str
    hit: bool


@dataclass(frozen=True, slots=True)
class RateLimitWaited:
    """The limiter granted a call its slot after ``wait`` seconds (0.0 when it started at once).

    Published once per granted acquisition, by whoever awaits ``Limiter.acquire`` (the engine),
    on the call's own task; the rate-limit wait histogram and the server span read it.
    """

    integration: str
    caller: str
    wait: float  # seconds


@dataclass(frozen=True, slots=True)
class LlmUsage:
    """An LLM integration (``IntegrationConfig.llm`` set) answered one call: GenAI facts only.

    Published by the engine once per call that reached the upstream, after the whole body was
    read (``call``) or when the stream ended (``stream``), on the call's own task. Never carries
    prompt or completion content.
    """

    integration: str  # the integration that answered (after fallback)
    caller: str
    provider: str  # gen_ai.provider.name: IntegrationConfig.llm ("openai", "anthropic", ...)
    endpoint: str  # the request path without its query (telemetry derives the operation from it)
    request_model: str  # the request JSON's "model" ("" when absent, e.g. Gemini: in the path)
    response_model: str  # the answer's "model" / "modelVersion" ("" when absent)
    input_tokens: int  # from the answer's usage; -1 when it reported none
    output_tokens: int  # -1 when it reported none
    duration: float  # seconds from the first attempt's send to the end of the body or stream
    status: int  # the final HTTP status; 0 when no answer came
    error_type: str = ""  # "" on success; the status ("429") or the error type otherwise
    finish_reasons: tuple[str, ...] = ()
    streamed: bool = False


@dataclass(frozen=True, slots=True)
class RedisStateChanged:
    """The shared Redis became reachable (``available``) or unreachable; published once per change.

    ``fallback`` says what ``scope: global`` limits do while it is away: ``"local"`` (each agent
    enforces its share on its own) or ``"deny"`` (calls fail with RATE_LIMITER_UNAVAILABLE).
    Telemetry turns it into the ``kilo.redis.available`` gauge; the warning is logged by the
    publisher, once per change.
    """

    available: bool
    url: str  # safe to show: the password is masked
    reason: str = ""  # why it is unreachable (an error type), "" when available
    fallback: str = "local"
