"""``kilo.*`` metrics (and server-span annotations) from the events the call path publishes.

Subscribers run inline on the publisher's task, so each one is a few instrument calls and
nothing else. Attribute values are bounded sets: integration and caller names from the config,
outcomes and reasons from the error model, breaker states; never paths, URLs or ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from agent.events import (
    BreakerStateChanged,
    CacheLookup,
    CallFinished,
    CredentialRefreshed,
    EventHub,
    FallbackUsed,
    RateLimitRejected,
    RateLimitWaited,
    RedisStateChanged,
    RetryScheduled,
    UpstreamHold,
)
from agent.telemetry.context import call_state

__all__ = ["BREAKER_STATES", "DURATION_BUCKETS", "EventMetrics", "ExpirySource"]

#: The HTTP / RPC semantic conventions' advised buckets (seconds).
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
_WAIT_BUCKETS: Final = (0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BREAKER_STATES: Final = ("CLOSED", "OPEN", "HALF_OPEN")

INTEGRATION: Final = "kilo.integration"
CALLER: Final = "kilo.caller"
OUTCOME: Final = "kilo.outcome"
REASON: Final = "kilo.reason"

#: Returns (integration, expires_at) for every integration whose credential expires.
ExpirySource = Callable[[], Iterable[tuple[str, datetime | None]]]


class EventMetrics:
    """Instruments fed by hub events; also annotates the current server span."""

    def __init__(self, meter: Meter, hub: EventHub) -> None:
        self._integrations: set[str] = set()
        self._breaker: dict[str, str] = {}
        self._expiry: dict[str, float] = {}  # epoch seconds, from CredentialRefreshed
        self._expiry_source: ExpirySource | None = None
        # Counted in a dict on the call path and read at collection: a dict increment instead of
        # an SDK Counter.add (~8 µs: attribute validation, sorting and hashing per call).
        self._calls: dict[tuple[str, str, str], int] = {}
        meter.create_observable_counter(
            "kilo.calls",
            callbacks=[self._observe_calls],
            unit="{call}",
            description="Calls served, by integration, caller and outcome.",
        )
        self.call_duration = meter.create_histogram(
            "kilo.call.duration",
            unit="s",
            description="Whole-call duration (all attempts and waits), by integration and outcome.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.rate_limit_wait = meter.create_histogram(
            "kilo.rate_limit.wait",
            unit="s",
            description="Time calls waited for a rate-limit slot.",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS,
        )
        self.rate_limit_rejections = meter.create_counter(
            "kilo.rate_limit.rejections",
            unit="{call}",
            description="Calls refused by the rate limiter (RESOURCE_EXHAUSTED).",
        )
        self.upstream_holds = meter.create_counter(
            "kilo.rate_limit.upstream_holds",
            unit="{hold}",
            description="Times the upstream's own rate-limit signals paused calls.",
        )
        self.breaker_transitions = meter.create_counter(
            "kilo.breaker.transitions",
            unit="{transition}",
            description="Circuit breaker state changes, by the state entered.",
        )
        meter.create_observable_gauge(
            "kilo.breaker.state",
            callbacks=[self._observe_breakers],
            unit="{state}",
            description="1 for the state each integration's breaker is in, 0 for the others.",
        )
        self.retries = meter.create_counter(
            "kilo.retries", unit="{retry}", description="Upstream attempts scheduled again."
        )
        self.fallbacks = meter.create_counter(
            "kilo.fallbacks",
            unit="{fallback}",
            description="Calls moved on to the next integration of their fallback list.",
        )
        self.cache_lookups = meter.create_counter(
            "kilo.cache.lookups",
            unit="{lookup}",
            description="Response cache lookups, by result (hit or miss).",
        )
        self.credential_refreshes = meter.create_counter(
            "kilo.credential.refreshes",
            unit="{refresh}",
            description="Credential fetches and refreshes, by result.",
        )
        meter.create_observable_gauge(
            "kilo.credential.time_to_expiry",
            callbacks=[self._observe_expiry],
            unit="s",
            description="Seconds until each integration's current credential expires.",
        )
        hub.subscribe(CallFinished, self.on_call_finished)
        hub.subscribe(RateLimitWaited, self.on_rate_limit_waited)
        hub.subscribe(RateLimitRejected, self.on_rate_limit_rejected)
        hub.subscribe(UpstreamHold, self.on_upstream_hold)
        hub.subscribe(BreakerStateChanged, self.on_breaker_state_changed)
        hub.subscribe(RetryScheduled, self.on_retry)
        hub.subscribe(FallbackUsed, self.on_fallback)
        hub.subscribe(CacheLookup, self.on_cache_lookup)
        hub.subscribe(CredentialRefreshed, self.on_credential_refreshed)
        self._redis: bool | None = None  # None until a Redis state is known (no redis block)
        meter.create_observable_gauge(
            "kilo.redis.available",
            callbacks=[self._observe_redis],
            unit="1",
            description="1 while the shared Redis (global limits, token sharing) is reachable.",
        )
        hub.subscribe(RedisStateChanged, self.on_redis_state_changed)

    def add_integration(self, name: str) -> None:
        """Known from the start, so gauges show CLOSED before any transition."""
        self._integrations.add(name)

    def watch_expiry(self, source: ExpirySource) -> None:
        """Read credential expiry from the providers themselves at every collection."""
        self._expiry_source = source

    def breaker_state(self, integration: str) -> str:
        return self._breaker.get(integration, "CLOSED")

    # -- subscribers -----------------------------------------------------------------------

    def on_call_finished(self, event: CallFinished) -> None:
        # A name the caller made up (UNKNOWN_INTEGRATION) must not mint a new series per name.
        integration = event.integration if event.integration in self._integrations else "_OTHER"
        key = (integration, event.caller, event.outcome)
        calls = self._calls
        calls[key] = calls.get(key, 0) + 1
        self.call_duration.record(
            event.duration, {INTEGRATION: integration, OUTCOME: event.outcome}
        )
        state = call_state()
        if state is not None and state.span.is_recording():
            state.span.set_attributes(
                {
                    CALLER: event.caller,
                    OUTCOME: event.outcome,
                    "kilo.breaker.state": self.breaker_state(event.integration),
                }
            )

    def on_rate_limit_waited(self, event: RateLimitWaited) -> None:
        self.rate_limit_wait.record(
            event.wait, {INTEGRATION: event.integration, CALLER: event.caller}
        )
        state = call_state()
        if state is not None:
            state.rate_limit_wait += event.wait
            state.span.set_attribute("kilo.rate_limit.wait", state.rate_limit_wait)

    def on_rate_limit_rejected(self, event: RateLimitRejected) -> None:
        self.rate_limit_rejections.add(
            1, {INTEGRATION: event.integration, CALLER: event.caller, REASON: event.reason}
        )

    def on_upstream_hold(self, event: UpstreamHold) -> None:
        self.upstream_holds.add(1, {INTEGRATION: event.integration, REASON: event.source})

    def on_breaker_state_changed(self, event: BreakerStateChanged) -> None:
        self._integrations.add(event.integration)
        self._breaker[event.integration] = event.new
        self.breaker_transitions.add(
            1,
            {
                INTEGRATION: event.integration,
                "kilo.breaker.state": event.new,
                "kilo.breaker.previous_state": event.old,
            },
        )

    def on_retry(self, event: RetryScheduled) -> None:
        self.retries.add(1, {INTEGRATION: event.integration, REASON: event.reason})

    def on_fallback(self, event: FallbackUsed) -> None:
        self.fallbacks.add(
            1,
            {INTEGRATION: event.integration, "kilo.fallback": event.fallback, REASON: event.reason},
        )

    def on_cache_lookup(self, event: CacheLookup) -> None:
        self.cache_lookups.add(
            1, {INTEGRATION: event.integration, "kilo.cache.result": "hit" if event.hit else "miss"}
        )
        state = call_state()
        if state is not None:
            state.cache_hit = event.hit
            state.span.set_attribute("kilo.cache.hit", event.hit)

    def on_credential_refreshed(self, event: CredentialRefreshed) -> None:
        self.credential_refreshes.add(
            1,
            {
                INTEGRATION: event.integration,
                "kilo.credential.result": "ok" if event.ok else "failed",
                "kilo.credential.trigger": event.trigger or "unknown",
            },
        )
        if event.ok and event.expires_at is not None:
            self._expiry[event.integration] = event.expires_at.timestamp()

    # -- observable callbacks (run on the metric reader's thread) --------------------------

    def _observe_calls(self, _options: CallbackOptions) -> Iterable[Observation]:
        for (integration, caller, outcome), count in list(self._calls.items()):
            yield Observation(count, {INTEGRATION: integration, CALLER: caller, OUTCOME: outcome})

    def _observe_breakers(self, _options: CallbackOptions) -> Iterable[Observation]:
        for name in sorted(self._integrations):
            current = self._breaker.get(name, "CLOSED")
            for state in BREAKER_STATES:
                yield Observation(
                    1 if state == current else 0, {INTEGRATION: name, "kilo.breaker.state": state}
                )

    def on_redis_state_changed(self, event: RedisStateChanged) -> None:
        self._redis = event.available

    def _observe_redis(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._redis is not None:
            yield Observation(1 if self._redis else 0)

    def _observe_expiry(self, _options: CallbackOptions) -> Iterable[Observation]:
        expiry = dict(self._expiry)
        if self._expiry_source is not None:
            for name, expires_at in self._expiry_source():
                if expires_at is not None:
                    expiry[name] = expires_at.timestamp()
        now = time.time()
        for name, at in sorted(expiry.items()):
            yield Observation(at - now, {INTEGRATION: name})
