"""Per-integration rate limiting: GCRA, FIFO waiting, caller sub-limits, a bulkhead, LLM token
budgets, and an adaptive hold fed by the upstream's own rate-limit headers.

Why GCRA rather than a token bucket: it *is* a token bucket (same admissions for the same rate
and burst) but its whole state is one number, the theoretical arrival time (TAT), and its step is
a pure function with no background refill. That makes three things simple: the exact
``retry_after`` of a refused call (the earliest conforming instant minus now), booking a future
slot for a waiting call (FIFO falls out of booking in arrival order), and a Redis backend later:
``gcra.gcra_reserve`` is the transition the Lua script mirrors (one GET/SET of the TAT, the
server's TIME as ``now``).

How a call waits: ``acquire`` computes the earliest instant every constraint admits it, and
refuses at once (``RateLimited`` with that exact ``retry_after``) when that is later than
``max_wait`` or the deadline allows; otherwise it books the slot and sleeps on one clock timer
until it. No polling, no wake-up chains. A caller's own sub-limit is booked first and the
integration-wide slot only when the caller's slot comes, so one throttled caller never holds the
others back; among calls that are not held by their own sub-limit, order is first in, first out.

The adaptive hold: ``observe`` parses the response's limit headers (``upstream_limits``). A
``Retry-After`` holds new calls until it passes; an upstream window (``remaining`` until
``reset_after``) is counted down by each call we admit, and once spent holds calls until the reset,
so we wait instead of spending attempts on 429s. Windows are per key: ``""`` is the whole
integration; the engine may pass a route as ``key`` and the upstream's bucket id (Discord
``X-RateLimit-Bucket``, GitHub ``x-ratelimit-resource``) maps routes that share a limit.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from agent.errors import RateLimited
from agent.events import EventHub, RateLimitRejected, UpstreamHold
from agent.policies.clock import SYSTEM_CLOCK, Clock
from agent.policies.gcra import GcraBucket, gcra_reserve
from agent.policies.upstream_limits import SignalParser, UpstreamSignal, lower_headers, parse_auto

__all__ = [
    "CallerLimit",
    "GcraBucket",
    "Limiter",
    "LocalLimiter",
    "Permit",
    "UnlimitedLimiter",
    "gcra_reserve",
    "rate_limited",
    "wait_limit",
    "window_of",
]

_MAX_KEYS = 4096  # bound on per-route upstream windows and route->bucket mappings


@dataclass(frozen=True, slots=True)
class CallerLimit:
    """A caller's own rate inside the integration's limit."""

    rate: float  # requests per second
    burst: float


class _Upstream:
    """What the upstream told us for one key, counted down locally."""

    __slots__ = ("hold_until", "req_remaining", "req_reset_at", "tok_remaining", "tok_reset_at")

    def __init__(self) -> None:
        self.hold_until = -math.inf
        self.req_remaining = math.inf
        self.req_reset_at = -math.inf
        self.tok_remaining = math.inf
        self.tok_reset_at = -math.inf

    def constrain(self, s: float, cost: float, tokens: float) -> float:
        if s < self.hold_until:
            s = self.hold_until
        if s < self.req_reset_at and self.req_remaining < cost:
            s = self.req_reset_at
        if tokens and s < self.tok_reset_at and self.tok_remaining < tokens:
            s = self.tok_reset_at
        return s

    def book(self, s: float, cost: float, tokens: float) -> None:
        if s < self.req_reset_at:
            self.req_remaining -= cost
        if tokens and s < self.tok_reset_at:
            self.tok_remaining -= tokens

    def expired(self, now: float) -> bool:
        return now >= self.hold_until and now >= self.req_reset_at and now >= self.tok_reset_at


class _Booking:
    """What one admitted call booked, so a cancelled wait can give it back."""

    __slots__ = ("caller", "requests", "tokens")

    def __init__(self) -> None:
        self.requests: tuple[GcraBucket, float, float] | None = None
        self.tokens: tuple[GcraBucket, float, float] | None = None
        self.caller: tuple[GcraBucket, float, float] | None = None

    def undo(self) -> None:
        for entry in (self.caller, self.requests, self.tokens):
            if entry is not None:
                entry[0].unbook(entry[1], entry[2])


class _PermitOwner(Protocol):
    def _release(self, permit: Permit) -> None: ...
    def _correct(self, permit: Permit, delta: float) -> None: ...


class Permit:
    """The right to run one call; the engine releases it (``async with`` or ``release()``).

    ``tokens`` is what the call was charged against the token budget; ``correct(actual)`` fixes
    it from the usage the response reported, refunding or debiting the difference.
    """

    __slots__ = ("_owner", "acquired_at", "released", "tokens", "waited")

    def __init__(
        self, owner: _PermitOwner | None, tokens: float, waited: float, now: float
    ) -> None:
        self._owner = owner
        self.tokens = tokens
        self.waited = waited  # seconds spent waiting for the slot (CallMeta.rate_limit_wait)
        self.acquired_at = now
        self.released = False

    def correct(self, actual_tokens: float) -> None:
        """Charge ``actual_tokens`` instead of the estimate (streaming: once usage arrives)."""
        delta = actual_tokens - self.tokens
        if delta and self._owner is not None:
            self._owner._correct(self, delta)
        self.tokens = actual_tokens

    def release(self) -> None:
        """Free the concurrency slot (idempotent)."""
        if not self.released:
            self.released = True
            if self._owner is not None:
                self._owner._release(self)

    async def __aenter__(self) -> Permit:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def wait_limit(now: float, max_wait: float, deadline: float | None) -> tuple[float, bool]:
    """The latest instant a call may start: ``now + max_wait``, or its deadline when sooner
    (then ``True``: a refusal is the deadline's, not ``max_wait``'s)."""
    limit_at = now + max_wait
    if deadline is not None and deadline < limit_at:
        return deadline, True
    return limit_at, False


def rate_limited(
    integration: str,
    caller: str,
    retry_after: float,
    reason: str,
    *,
    max_wait: float,
    hub: EventHub | None,
    scope: str = "",
    shared_by: str = "",
    knobs: str = "requests_per_second, burst, max_wait, max_concurrent",
) -> RateLimited:
    """The refusal of one call (published as ``RateLimitRejected``), worded the same way by
    every limiter; ``scope`` and ``shared_by`` say which limit it is (the Redis-shared one)."""
    if hub is not None and hub.has_subscribers(RateLimitRejected):
        hub.publish(RateLimitRejected(integration, caller, retry_after, reason))
    who = f" for caller {caller!r}" if reason == "caller_limit" and caller else ""
    limit = {
        "deadline": "before the call's deadline",
        "concurrency": "while every concurrent slot (max_concurrent) was busy",
    }.get(reason, f"within max_wait ({max_wait:g}s)")
    return RateLimited(
        f"{scope}rate limit of integration {integration!r} reached{who}{shared_by}: the call "
        "could not "
        f"start {limit}; a slot frees in {retry_after:.3f}s. Retry after that, or raise "
        f"rate_limit ({knobs}) in the config.",
        retry_after=retry_after,
        integration=integration,
    )


def window_of(route_bucket: Mapping[str, str], key: str) -> str:
    """The upstream window a route's calls count against (its learnt bucket id, else itself)."""
    return route_bucket.get(key, key) if key else ""


class Limiter(Protocol):
    """What the engine needs from a limiter; ``LocalLimiter`` now, a Redis one later."""

    async def acquire(
        self,
        cost: float = 1,
        *,
        deadline: float | None = None,
        caller: str = "",
        tokens: float = 0,
        key: str = "",
    ) -> Permit:
        """Wait (FIFO, <= max_wait, <= ``deadline`` on the limiter's clock) for a slot, or raise
        ``RateLimited(retry_after=...)`` at once when the wait would be too long."""
        ...

    def observe(
        self, status: int, headers: Mapping[str, str], *, body: bytes | None = None, key: str = ""
    ) -> None:
        """Feed a response's status and headers (and small body) to the adaptive hold."""
        ...

    def available(self) -> float:
        """Requests that could start now without waiting."""
        ...


class _Bulkhead:
    """At most ``limit`` permits out; waiters are served first in, first out."""

    __slots__ = ("active", "avg_hold", "limit", "waiters")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.avg_hold = 1.0  # EWMA of permit lifetimes: the retry_after we quote when full

    def release(self, held: float) -> None:
        self.avg_hold += 0.2 * (held - self.avg_hold)
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes straight to the next waiter
                return
        self.active -= 1


class UnlimitedLimiter:
    """A limiter that admits everything at once: for integrations without ``rate_limit``."""

    __slots__ = ()

    async def acquire(
        self,
        cost: float = 1,
        *,
        deadline: float | None = None,
        caller: str = "",
        tokens: float = 0,
        key: str = "",
    ) -> Permit:
        return Permit(None, tokens, 0.0, 0.0)

    def observe(
        self, status: int, headers: Mapping[str, str], *, body: bytes | None = None, key: str = ""
    ) -> None:
        return None

    def available(self) -> float:
        return math.inf


class LocalLimiter:
    """The in-process limiter of one integration (see the module docstring for the design).

    ``requests_per_second``/``burst``: the integration's GCRA (None = no request rate).
    ``max_wait``: longest a call may queue. ``max_concurrent``: bulkhead (0 = none).
    ``tokens_per_minute``: LLM token budget, burst one minute's worth (0 = none).
    ``caller_limits``/``default_caller_limit``: sub-limits per caller name.
    ``adaptive``: obey the upstream's headers through ``parser``.
    """

    def __init__(
        self,
        *,
        integration: str = "",
        requests_per_second: float | None = None,
        burst: float = 1,
        max_wait: float = 0.0,
        max_concurrent: int = 0,
        tokens_per_minute: float = 0,
        caller_limits: Mapping[str, CallerLimit] | None = None,
        default_caller_limit: CallerLimit | None = None,
        adaptive: bool = True,
        parser: SignalParser = parse_auto,
        clock: Clock = SYSTEM_CLOCK,
        hub: EventHub | None = None,
    ) -> None:
        if max_wait < 0:
            raise ValueError("max_wait must be >= 0")
        self.integration = integration
        self._clock = clock
        self._hub = hub
        self._max_wait = max_wait
        self._requests = GcraBucket(requests_per_second, burst) if requests_per_second else None
        self._tokens = (
            GcraBucket(tokens_per_minute / 60.0, tokens_per_minute) if tokens_per_minute else None
        )
        self._bulkhead = _Bulkhead(max_concurrent) if max_concurrent > 0 else None
        self._caller_limits = dict(caller_limits or {})
        self._default_caller_limit = default_caller_limit
        self._callers: dict[str, GcraBucket] = {}
        self._adaptive = adaptive
        self._parser = parser
        self._upstream: dict[str, _Upstream] = {}
        self._route_bucket: dict[str, str] = {}
        self._last_start = -math.inf  # FIFO: no call is booked before an earlier one

    @classmethod
    def share_of(
        cls,
        share: float,
        *,
        requests_per_second: float | None = None,
        burst: float = 1,
        max_concurrent: int = 0,
        tokens_per_minute: float = 0,
        caller_limits: Mapping[str, CallerLimit] | None = None,
        **kwargs: Any,
    ) -> LocalLimiter:
        """A limiter enforcing ``share`` (0 < share <= 1) of the given limit: one of N workers,
        or one agent while the Redis-shared limit is away. Counts (burst, concurrency) round
        down, never below 1, so N shares never admit more than the whole."""

        def part(whole: float) -> int:
            return max(1, math.floor(whole * share))

        return cls(
            requests_per_second=requests_per_second * share if requests_per_second else None,
            burst=part(burst),
            max_concurrent=part(max_concurrent) if max_concurrent else 0,
            tokens_per_minute=tokens_per_minute * share,
            caller_limits={
                name: CallerLimit(limit.rate * share, part(limit.burst))
                for name, limit in (caller_limits or {}).items()
            },
            **kwargs,
        )

    # -- acquire ------------------------------------------------------------------------------

    def _caller_bucket(self, caller: str) -> GcraBucket | None:
        bucket = self._callers.get(caller)
        if bucket is None:
            limit = self._caller_limits.get(caller, self._default_caller_limit)
            if limit is None:
                return None
            bucket = self._callers[caller] = GcraBucket(limit.rate, limit.burst)
        return bucket

    def _window_key(self, key: str) -> str:
        return window_of(self._route_bucket, key)

    def _start(self, now: float, cost: float, tokens: float, wkey: str) -> float:
        """The earliest instant the integration-wide constraints admit this call."""
        s = self._last_start if self._last_start > now else now
        if self._requests is not None:
            s = max(s, self._requests.earliest(now, cost))
        if tokens and self._tokens is not None:
            s = max(s, self._tokens.earliest(now, tokens))
        if self._upstream:
            up = self._upstream.get("")
            if up is not None:
                s = up.constrain(s, cost, tokens)
            if wkey:
                up = self._upstream.get(wkey)
                if up is not None:
                    s = up.constrain(s, cost, tokens)
        return s

    def _book(self, booking: _Booking, s: float, cost: float, tokens: float, wkey: str) -> None:
        self._last_start = s
        if self._requests is not None:
            booking.requests = (self._requests, *self._requests.book(s, cost))
        if tokens and self._tokens is not None:
            booking.tokens = (self._tokens, *self._tokens.book(s, tokens))
        if self._upstream:
            for k in ("", wkey) if wkey else ("",):
                up = self._upstream.get(k)
                if up is not None:
                    up.book(s, cost, tokens)

    def _reject(self, caller: str, retry_after: float, reason: str) -> RateLimited:
        return rate_limited(
            self.integration, caller, retry_after, reason, max_wait=self._max_wait, hub=self._hub
        )

    async def acquire(
        self,
        cost: float = 1,
        *,
        deadline: float | None = None,
        caller: str = "",
        tokens: float = 0,
        key: str = "",
    ) -> Permit:
        clock = self._clock
        now = t0 = clock.now()
        limit_at, by_deadline = wait_limit(now, self._max_wait, deadline)
        if self._upstream:
            self._expire(now)
        wkey = self._window_key(key)
        booking = _Booking()

        cbucket = (
            self._caller_bucket(caller)
            if (self._caller_limits or self._default_caller_limit)
            else None
        )
        if cbucket is not None:
            cstart = cbucket.earliest(now, cost)
            if cstart > now:
                # Refuse now if even the optimistic estimate (the integration's state as it is)
                # is too late; the caller's slot first, the integration's when it comes.
                estimate = self._start(cstart, cost, tokens, wkey)
                if estimate > limit_at:
                    reason = "caller_limit" if cstart > limit_at else self._why(by_deadline)
                    raise self._reject(caller, estimate - now, reason)
                booking.caller = (cbucket, *cbucket.book(cstart, cost))
                try:
                    await clock.sleep(cstart - now)
                except BaseException:
                    booking.undo()
                    raise
                now = clock.now()
            else:
                booking.caller = (cbucket, *cbucket.book(now, cost))

        start = self._start(now, cost, tokens, wkey)
        if start > now:
            if start > limit_at:
                booking.undo()
                raise self._reject(caller, start - now, self._why(by_deadline))
            self._book(booking, start, cost, tokens, wkey)
            try:
                await clock.sleep(start - now)
            except BaseException:
                booking.undo()
                raise
        else:
            self._book(booking, now, cost, tokens, wkey)

        bulkhead = self._bulkhead
        if bulkhead is not None:
            if bulkhead.active < bulkhead.limit and not bulkhead.waiters:
                bulkhead.active += 1
            else:
                await self._wait_bulkhead(bulkhead, limit_at, caller, booking)
        now = clock.now()
        return Permit(self, tokens, now - t0, now)

    @staticmethod
    def _why(by_deadline: bool) -> str:
        return "deadline" if by_deadline else "max_wait"

    async def _wait_bulkhead(
        self, bulkhead: _Bulkhead, limit_at: float, caller: str, booking: _Booking
    ) -> None:
        budget = limit_at - self._clock.now()
        if budget <= 0:
            booking.undo()
            raise self._reject(caller, bulkhead.avg_hold, "concurrency")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        bulkhead.waiters.append(fut)

        def expire() -> None:
            if not fut.done():
                fut.set_exception(self._reject(caller, bulkhead.avg_hold, "concurrency"))

        timer = self._clock.call_later(budget, expire)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                bulkhead.release(0.0)  # we were handed the slot as we were cancelled: pass it on
            elif fut in bulkhead.waiters:
                bulkhead.waiters.remove(fut)
            booking.undo()
            raise
        finally:
            timer.cancel()

    # -- permits ------------------------------------------------------------------------------

    def _release(self, permit: Permit) -> None:
        if self._bulkhead is not None:
            self._bulkhead.release(self._clock.now() - permit.acquired_at)

    def _correct(self, permit: Permit, delta: float) -> None:
        now = self._clock.now()
        if self._tokens is not None:
            self._tokens.adjust(now, delta)
        up = self._upstream.get("")
        if up is not None and now < up.tok_reset_at:
            up.tok_remaining -= delta

    # -- upstream signals ---------------------------------------------------------------------

    def observe(
        self, status: int, headers: Mapping[str, str], *, body: bytes | None = None, key: str = ""
    ) -> None:
        if not self._adaptive or not headers:
            return
        signal = self._parser(status, lower_headers(headers), body, self._clock.wall())
        if signal is not None:
            self.apply(signal, key=key)

    def apply(self, signal: UpstreamSignal, *, key: str = "") -> None:
        """Record a parsed signal (``observe`` without the parsing)."""
        now = self._clock.now()
        if key and signal.bucket and not signal.is_global:
            if len(self._route_bucket) >= _MAX_KEYS:
                self._route_bucket.clear()
            self._route_bucket[key] = signal.bucket
        wkey = "" if signal.is_global or not key else self._window_key(key)
        up = self._upstream.get(wkey)
        if up is None:
            if len(self._upstream) >= _MAX_KEYS:
                self._expire(now, force=True)
            up = self._upstream[wkey] = _Upstream()
        if signal.remaining is not None and signal.reset_after is not None:
            up.req_remaining = signal.remaining
            up.req_reset_at = now + signal.reset_after
        if signal.tokens_remaining is not None and signal.tokens_reset_after is not None:
            up.tok_remaining = signal.tokens_remaining
            up.tok_reset_at = now + signal.tokens_reset_after
        if signal.retry_after:
            up.hold_until = max(up.hold_until, now + signal.retry_after)
        hold = up.constrain(now, 1, 0) - now
        if hold > 0 and self._hub is not None and self._hub.has_subscribers(UpstreamHold):
            source = "retry_after" if now < up.hold_until else "exhausted"
            self._hub.publish(UpstreamHold(self.integration, wkey, hold, source))

    def _expire(self, now: float, *, force: bool = False) -> None:
        dead = [k for k, up in self._upstream.items() if up.expired(now)]
        for k in dead:
            del self._upstream[k]
        if force and len(self._upstream) >= _MAX_KEYS:
            self._upstream.clear()

    # -- status -------------------------------------------------------------------------------

    def available(self) -> float:
        now = self._clock.now()
        n = math.inf
        if self._requests is not None:
            n = self._requests.available(now)
        up = self._upstream.get("")
        if up is not None:
            if now < up.hold_until:
                return 0.0
            if now < up.req_reset_at:
                n = min(n, max(0.0, up.req_remaining))
        if self._bulkhead is not None:
            n = min(n, self._bulkhead.limit - self._bulkhead.active)
        return n

    @property
    def queued_concurrency(self) -> int:
        """Calls waiting for a concurrent slot."""
        return len(self._bulkhead.waiters) if self._bulkhead is not None else 0
