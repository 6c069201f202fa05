"""Retries: exponential backoff with full jitter, Retry-After, idempotency, and a retry budget.

``RetryPolicy.decide`` is the whole decision for one failed attempt, in this order: attempts
left; a retryable outcome (a status in ``on_status`` or a connect/timeout error; an upstream
``x-should-retry: false|true`` overrides, as the OpenAI/Anthropic SDKs obey it); a method safe to
resend (RFC 9110 9.2.2 idempotent methods, or any method with an Idempotency-Key); the budget; and
a delay that fits the caller's deadline. The delay is the upstream's ``Retry-After`` when
``respect_retry_after`` and it is given, else ``random() * min(max_backoff, initial * 2^(n-1))``
(AWS "full jitter"). When the wait would reach the deadline there is no point in waiting: the
decision is "don't retry" and the engine returns what it has.

``RetryBudget`` (Finagle's shape): retries may be at most ``ratio`` of the calls seen over the last
``window`` seconds, plus ``min_per_second`` x ``window`` so that a quiet integration can still
retry. During an outage the extra load is bounded by ``ratio`` instead of multiplying by
``max_attempts``.

The policy never sleeps: the engine awaits ``clock.sleep(decision.delay)`` with the same clock.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from agent.errors import UpstreamTimeout, UpstreamUnreachable
from agent.events import EventHub, RetryScheduled
from agent.policies._window import SlidingCounts
from agent.policies.clock import SYSTEM_CLOCK, Clock
from agent.policies.upstream_limits import parse_retry_after

__all__ = [
    "IDEMPOTENT_METHODS",
    "RetryBudget",
    "RetryDecision",
    "RetryPolicy",
    "is_retryable_error",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

_RETRYABLE_ERRORS = (UpstreamUnreachable, UpstreamTimeout, ConnectionError, TimeoutError)


def is_retryable_error(error: BaseException) -> bool:
    """Connect/TLS/reset failures and attempt timeouts; never the agent's own refusals."""
    return isinstance(error, _RETRYABLE_ERRORS)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether to send again, after how long, and why (for logs and the retry metric)."""

    retry: bool
    delay: float = 0.0
    reason: str = ""  # why not (or the cause of the retry when retry is True)
    from_retry_after: bool = False


_NO_ATTEMPTS = RetryDecision(False, reason="attempts_exhausted")
_NOT_RETRYABLE = RetryDecision(False, reason="not_retryable")
_NOT_IDEMPOTENT = RetryDecision(False, reason="not_idempotent")
_NO_BUDGET = RetryDecision(False, reason="budget_exhausted")
_PAST_DEADLINE = RetryDecision(False, reason="deadline")
_SUCCESS = RetryDecision(False, reason="success")


class RetryBudget:
    """Retries at most ``ratio`` x calls over ``window`` seconds, plus a small floor."""

    __slots__ = ("_clock", "_counts", "_floor", "_ratio")

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        window: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if ratio < 0 or min_per_second < 0 or window <= 0:
            raise ValueError("ratio and min_per_second must be >= 0, window > 0")
        self._ratio = ratio
        self._floor = min_per_second * window
        self._clock = clock
        self._counts = SlidingCounts(window, 2)  # calls, retries

    def record_call(self) -> None:
        """Deposit: one call started (its first attempt)."""
        self._counts.add(self._clock.now(), 0)

    def try_withdraw(self) -> bool:
        """Take one retry if the budget has room."""
        now = self._clock.now()
        calls, retries = self._counts.totals(now)
        if retries + 1 > self._floor + self._ratio * calls:
            return False
        self._counts.add(now, 1)
        return True

    def balance(self) -> float:
        """Retries still allowed in the current window."""
        calls, retries = self._counts.totals(self._clock.now())
        return max(0.0, self._floor + self._ratio * calls - retries)


class RetryPolicy:
    """One integration's retry rules (see the module docstring)."""

    def __init__(
        self,
        *,
        integration: str = "",
        max_attempts: int = 3,
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
        on_status: Collection[int] = (429, 502, 503, 504),
        respect_retry_after: bool = True,
        budget: RetryBudget | None = None,
        random: Callable[[], float] = _random.random,
        clock: Clock = SYSTEM_CLOCK,
        hub: EventHub | None = None,
    ) -> None:
        if max_attempts < 1 or initial_backoff < 0 or max_backoff < initial_backoff:
            raise ValueError("max_attempts >= 1 and 0 <= initial_backoff <= max_backoff")
        self.integration = integration
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.on_status = frozenset(on_status)
        self.respect_retry_after = respect_retry_after
        self.budget = budget
        self._random = random
        self._clock = clock
        self._hub = hub

    def record_call(self) -> None:
        """Tell the budget a call started (once per call, not per attempt)."""
        if self.budget is not None:
            self.budget.record_call()

    def backoff(self, attempt: int) -> float:
        """Full-jitter delay after failed attempt ``attempt`` (1-based)."""
        cap = self.initial_backoff * 2.0 ** min(attempt - 1, 62)
        return self._random() * (cap if cap < self.max_backoff else self.max_backoff)

    def should_retry(
        self,
        method: str,
        status: int | None = None,
        error: BaseException | None = None,
        *,
        has_idempotency_key: bool = False,
    ) -> bool:
        """Is this outcome retryable, and is the method safe to send again?"""
        if error is not None:
            retryable = is_retryable_error(error)
        else:
            retryable = status is not None and status in self.on_status
        return retryable and (has_idempotency_key or method.upper() in IDEMPOTENT_METHODS)

    def decide(
        self,
        *,
        attempt: int,
        method: str,
        status: int | None = None,
        error: BaseException | None = None,
        headers: Mapping[str, str] | None = None,
        has_idempotency_key: bool = False,
        deadline: float | None = None,
    ) -> RetryDecision:
        """Decide after failed attempt ``attempt`` (1-based). ``headers`` are the response's
        (lower-case names); ``deadline`` is on the policy's clock. Consumes budget and publishes
        ``RetryScheduled`` when the answer is yes."""
        if error is None and status is not None and status < 400:
            return _SUCCESS
        if attempt >= self.max_attempts:
            return _NO_ATTEMPTS
        forced: bool | None = None
        if headers:
            flag = headers.get("x-should-retry")
            if flag == "true":
                forced = True
            elif flag == "false":
                forced = False
        if forced is False:
            return _NOT_RETRYABLE
        if forced is None:
            if error is not None:
                if not is_retryable_error(error):
                    return _NOT_RETRYABLE
            elif status is None or status not in self.on_status:
                return _NOT_RETRYABLE
        if not has_idempotency_key and method.upper() not in IDEMPOTENT_METHODS:
            return _NOT_IDEMPOTENT

        delay = -1.0
        from_header = False
        if self.respect_retry_after and headers:
            ra = headers.get("retry-after-ms")
            if ra is not None:
                try:
                    delay = max(0.0, float(ra) / 1000.0)
                except ValueError:
                    delay = -1.0
            if delay < 0:
                parsed = parse_retry_after(headers.get("retry-after"), self._clock.wall())
                if parsed is not None:
                    delay = parsed
            from_header = delay >= 0
        if delay < 0:
            delay = self.backoff(attempt)
        if deadline is not None and self._clock.now() + delay >= deadline:
            return _PAST_DEADLINE
        if self.budget is not None and not self.budget.try_withdraw():
            return _NO_BUDGET

        reason = type(error).__name__ if error is not None else str(status)
        hub = self._hub
        if hub is not None and hub.has_subscribers(RetryScheduled):
            hub.publish(RetryScheduled(self.integration, attempt, delay, reason, from_header))
        return RetryDecision(True, delay, reason, from_header)
