"""Circuit breaker with resilience4j semantics (time-based window).

States: CLOSED (calls flow, outcomes are counted over the last ``window`` seconds in 1-second
buckets, so memory and CPU per call are O(1)); OPEN (calls are refused with ``CircuitOpen`` and a
``retry_after`` of the time left, without touching the network); HALF_OPEN (after ``open_for``,
``half_open_calls`` trial calls are let through; once that many have finished, their failure and
slow-call rates decide: back to OPEN, or CLOSED with a fresh window).

CLOSED opens when at least ``minimum_calls`` were recorded in the window and the failure rate is
>= ``failure_rate`` or the slow-call rate is >= ``slow_call_rate`` (a call slower than
``slow_call_duration`` is slow; 0 = slow calls are not counted). As in resilience4j, outcomes
recorded while OPEN are ignored, and in HALF_OPEN any recorded outcome counts as a trial.

Which outcomes are failures is the engine's decision; ``is_failure`` is the usual rule.
Transitions are published as ``BreakerStateChanged`` on the hub.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from agent.errors import AgentError, CircuitOpen, UpstreamTimeout, UpstreamUnreachable
from agent.events import BreakerStateChanged, EventHub
from agent.policies._window import SlidingCounts
from agent.policies.clock import SYSTEM_CLOCK, Clock

__all__ = ["DEFAULT_FAILURE_STATUS", "CircuitBreaker", "CircuitState", "is_failure"]

DEFAULT_FAILURE_STATUS: frozenset[int] = frozenset(range(500, 600))

_CALLS, _FAILURES, _SLOW = 0, 1, 2


class CircuitState(StrEnum):
    """The breaker's state; the value is what events and ListIntegrations report."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


def is_failure(
    status: int | None,
    error: BaseException | None,
    failure_status: Collection[int] = DEFAULT_FAILURE_STATUS,
) -> bool:
    """The usual classification: connect/TLS/reset errors and timeouts are failures, and so is a
    response whose status is in ``failure_status`` (5xx by default; 4xx only when listed).
    The agent's own refusals (rate limited, circuit open, bad request...) and the caller's
    cancellation say nothing about the upstream's health: not failures."""
    if error is not None:
        if isinstance(error, UpstreamUnreachable | UpstreamTimeout):
            return True
        if isinstance(error, AgentError):
            return False
        return isinstance(error, Exception)  # CancelledError (a BaseException) is the caller's
    return status is not None and status in failure_status


class CircuitBreaker:
    """One integration's breaker. ``allow()`` before the call, ``record()`` after it."""

    HALF_OPEN_RETRY_AFTER = 1.0  # quoted to calls refused while the trial calls are in flight

    def __init__(
        self,
        *,
        integration: str = "",
        failure_rate: float = 0.5,
        minimum_calls: int = 10,
        window: float = 30.0,
        open_for: float = 30.0,
        half_open_calls: int = 3,
        slow_call_duration: float = 0.0,
        slow_call_rate: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
        hub: EventHub | None = None,
    ) -> None:
        if not 0 < failure_rate <= 1 or not 0 < slow_call_rate <= 1:
            raise ValueError("failure_rate and slow_call_rate must be in (0, 1]")
        if minimum_calls < 1 or half_open_calls < 1 or window <= 0 or open_for < 0:
            raise ValueError(
                "minimum_calls and half_open_calls must be >= 1, window > 0, open_for >= 0"
            )
        self.integration = integration
        self._failure_rate = failure_rate
        self._minimum_calls = minimum_calls
        self._open_for = open_for
        self._half_open_calls = half_open_calls
        self._slow_duration = slow_call_duration
        self._slow_rate = slow_call_rate
        self._clock = clock
        self._hub = hub
        self._window = SlidingCounts(window, 3)
        self._state = CircuitState.CLOSED
        self._open_until = 0.0
        self._trials_allowed = 0
        self._trial = [0, 0, 0]  # calls, failures, slow among half-open trials

    @property
    def state(self) -> CircuitState:
        """The current state (OPEN turns HALF_OPEN lazily, on the next ``allow``)."""
        return self._state

    def retry_after(self) -> float:
        """Seconds until calls may be tried again (0 when CLOSED)."""
        if self._state is CircuitState.OPEN:
            return max(0.0, self._open_until - self._clock.now())
        if self._state is CircuitState.HALF_OPEN:
            return self.HALF_OPEN_RETRY_AFTER
        return 0.0

    def allow(self) -> bool:
        """True when the call may go; raises ``CircuitOpen`` (with ``retry_after``) when not."""
        state = self._state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            now = self._clock.now()
            if now < self._open_until:
                raise self._refuse(self._open_until - now)
            self._transition(CircuitState.HALF_OPEN, 0.0, 0.0)
        if self._trials_allowed < self._half_open_calls:
            self._trials_allowed += 1
            return True
        raise self._refuse(self.HALF_OPEN_RETRY_AFTER)

    def record(self, success: bool, duration: float) -> None:
        """Count one finished call (``duration`` in seconds)."""
        state = self._state
        slow = self._slow_duration > 0 and duration >= self._slow_duration
        if state is CircuitState.CLOSED:
            now = self._clock.now()
            window = self._window
            window.add(now, _CALLS)
            if not success:
                window.add(now, _FAILURES)
            if slow:
                window.add(now, _SLOW)
            totals = window.totals(now)
            calls = totals[_CALLS]
            if calls >= self._minimum_calls and (not success or slow):
                self._maybe_open(calls, totals[_FAILURES], totals[_SLOW])
        elif state is CircuitState.HALF_OPEN:
            trial = self._trial
            trial[_CALLS] += 1
            trial[_FAILURES] += not success
            trial[_SLOW] += slow
            if trial[_CALLS] >= self._half_open_calls:
                calls, failures, slows = trial
                if not self._maybe_open(calls, failures, slows):
                    self._transition(CircuitState.CLOSED, failures / calls, slows / calls)

    def reset(self) -> None:
        """Back to CLOSED with an empty window (operator action, config reload)."""
        if self._state is not CircuitState.CLOSED:
            self._transition(CircuitState.CLOSED, 0.0, 0.0)

    def _maybe_open(self, calls: int, failures: int, slows: int) -> bool:
        f_rate = failures / calls
        s_rate = slows / calls if self._slow_duration > 0 else 0.0
        if f_rate >= self._failure_rate or (self._slow_duration > 0 and s_rate >= self._slow_rate):
            self._open_until = self._clock.now() + self._open_for
            self._transition(CircuitState.OPEN, f_rate, s_rate)
            return True
        return False

    def _transition(self, new: CircuitState, f_rate: float, s_rate: float) -> None:
        old = self._state
        self._state = new
        self._trials_allowed = 0
        self._trial = [0, 0, 0]
        if new is CircuitState.CLOSED:
            self._window.clear()
        hub = self._hub
        if hub is not None and hub.has_subscribers(BreakerStateChanged):
            hub.publish(BreakerStateChanged(self.integration, old.value, new.value, f_rate, s_rate))

    def _refuse(self, retry_after: float) -> CircuitOpen:
        return CircuitOpen(
            f"circuit breaker of integration {self.integration!r} is {self._state.value}: "
            f"recent calls failed too often, so calls are refused for {retry_after:.3f}s "
            "without reaching the upstream. Retry after that, configure a fallback, or tune "
            "circuit_breaker (failure_rate, minimum_calls, open_for) in the config.",
            retry_after=retry_after,
            integration=self.integration,
        )
