"""``RedisLimiter``: one integration's ``scope: global`` limit, shared by every agent on a Redis.

Same ``Limiter`` protocol, semantics and errors as ``LocalLimiter``; the state lives in Redis and
each step is the Lua script of ``script.py`` (GCRA on Redis's clock):

- **One round trip per admitted call.** The script answers "go now", "your slot is booked in
  ``w`` seconds" (the call sleeps once, on a local timer: waiting never polls Redis), or "refused,
  retry after ``r``" (``RateLimited``, exactly as the local limiter words it). A caller held by
  its own sub-limit takes two: its slot first, the integration's when it comes.
- **Upstream holds are shared.** ``observe`` parses the response once; the signal is applied to
  the local fallback at once and written to Redis in the background, where every replica's next
  call sees it (a 429 Retry-After learned by one replica holds them all).
- **Per agent** remain what is about this process: the bulkhead (``max_concurrent`` counts this
  agent's calls in flight) and the route -> upstream bucket mapping.
- **Redis away.** Calls never wait for it: each operation is bounded by ``redis.timeout`` (and
  the call's deadline); a failure marks Redis unavailable (one warning) and, until the probe
  sees it again, ``on_unavailable: local`` admits calls through a ``LocalLimiter`` holding
  ``local_share`` of the global rate, burst and token budget, while ``deny`` refuses them with
  ``RateLimiterUnavailable`` (UNAVAILABLE, ``RATE_LIMITER_UNAVAILABLE``).
- A wait cancelled after its slot was booked keeps the slot (conservative: never over-admits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from agent.errors import RateLimited, RateLimiterUnavailable
from agent.events import EventHub, RateLimitRejected
from agent.policies import SYSTEM_CLOCK, CallerLimit, Clock, LocalLimiter, Permit, UpstreamSignal
from agent.policies.limiter import rate_limited, wait_limit, window_of
from agent.policies.upstream_limits import SignalParser, lower_headers, parse_auto
from agent.redis.client import RedisUnavailable

if TYPE_CHECKING:
    from agent.redis.runtime import RedisRuntime

__all__ = ["RedisLimiter"]

_US = 1e6  # the script counts microseconds
_MAX_KEYS = 4096


class _GlobalPermit(Permit):
    """A permit of the global limiter: may hold a bulkhead slot and, under the fallback, the
    local limiter's permit (which then owns token corrections)."""

    __slots__ = ("gate", "local")

    def __init__(
        self,
        owner: RedisLimiter,
        tokens: float,
        waited: float,
        now: float,
        gate: Permit | None,
        local: Permit | None,
    ) -> None:
        super().__init__(owner, tokens, waited, now)
        self.gate = gate
        self.local = local


class RedisLimiter:
    """The global limiter of one integration (see the module docstring)."""

    def __init__(
        self,
        runtime: RedisRuntime,
        *,
        integration: str,
        requests_per_second: float | None = None,
        burst: float = 1,
        max_wait: float = 0.0,
        max_concurrent: int = 0,
        tokens_per_minute: float = 0,
        caller_limits: Mapping[str, CallerLimit] | None = None,
        adaptive: bool = True,
        parser: SignalParser = parse_auto,
        clock: Clock = SYSTEM_CLOCK,
        hub: EventHub | None = None,
    ) -> None:
        if max_wait < 0:
            raise ValueError("max_wait must be >= 0")
        self.integration = integration
        self._runtime = runtime
        self._clock = clock
        self._hub = hub
        self._max_wait = max_wait
        self._adaptive = adaptive
        self._parser = parser
        self._rate = requests_per_second
        self._burst = float(burst)
        self._tpm = tokens_per_minute
        self._callers = dict(caller_limits or {})
        # script arguments that never change
        self._req = (_US / requests_per_second, self._burst) if requests_per_second else (0.0, 0)
        self._tok = (
            (_US * 60.0 / tokens_per_minute, float(tokens_per_minute))
            if tokens_per_minute
            else (0.0, 0)
        )
        self._caller_args = {
            name: (_US / limit.rate, float(limit.burst)) for name, limit in self._callers.items()
        }
        self._key = runtime.key(integration, "rl")
        self._route_bucket: dict[str, str] = {}
        self.fallback = LocalLimiter.share_of(
            runtime.local_share,
            requests_per_second=requests_per_second,
            burst=self._burst,
            tokens_per_minute=tokens_per_minute,
            caller_limits=self._callers,
            integration=integration,
            max_wait=max_wait,
            adaptive=adaptive,
            parser=parser,
            clock=clock,
            hub=hub,
        )
        self._gate = (
            LocalLimiter(
                integration=integration,
                max_concurrent=max_concurrent,
                adaptive=False,
                max_wait=max_wait,
                clock=clock,
                hub=hub,
            )
            if max_concurrent > 0
            else None
        )
        self._available = float(burst) if requests_per_second else math.inf
        self._available_at = -math.inf

    # -- acquire ------------------------------------------------------------------------------

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
        t0 = now = clock.now()
        limit_at, by_deadline = wait_limit(now, self._max_wait, deadline)
        local: Permit | None = None
        if self._runtime.health.available:
            try:
                await self._acquire_global(
                    cost, now, limit_at, by_deadline, deadline, caller, tokens, key
                )
            except RedisUnavailable:
                local = await self._without_redis(cost, deadline, caller, tokens, key)
        else:
            local = await self._without_redis(cost, deadline, caller, tokens, key)
        gate: Permit | None = None
        if self._gate is not None:
            gate = await self._gate.acquire(deadline=limit_at, caller=caller)
        now = clock.now()
        return _GlobalPermit(self, tokens, now - t0, now, gate, local)

    async def _without_redis(
        self, cost: float, deadline: float | None, caller: str, tokens: float, key: str
    ) -> Permit:
        if self._runtime.on_unavailable == "deny":
            retry = self._runtime.health.retry_in()
            self._publish_reject(caller, retry, "unavailable")
            raise RateLimiterUnavailable(
                f"the global rate limit of integration {self.integration!r} is kept in Redis, "
                f"which is unreachable, and redis.on_unavailable is 'deny'; retry in "
                f"{retry:.1f}s, restore Redis, or set redis.on_unavailable: local",
                retry_after=retry,
                integration=self.integration,
            )
        return await self.fallback.acquire(
            cost, deadline=deadline, caller=caller, tokens=tokens, key=key
        )

    async def _step(
        self, args: list[object], caller: str, wkey: str, deadline: float | None
    ) -> list[bytes]:
        """One script call, bounded by ``redis.timeout`` -- or by the call's deadline when that
        is nearer, and then running out is the call's deadline (``RateLimited``), not Redis's."""
        keys = [self._key, self._caller_key(caller), self._window_key(wkey)]
        timeout = self._runtime.timeout
        if deadline is not None and deadline - self._clock.now() < timeout:
            timeout = max(0.0, deadline - self._clock.now())
            try:
                answer: list[bytes] = await self._runtime.eval(
                    keys, args, within=timeout, blame=False
                )
            except TimeoutError:
                raise self._reject(caller, 0.0, "deadline") from None
            return answer
        return await self._runtime.eval(keys, args, within=timeout)  # type: ignore[no-any-return]

    async def _acquire_global(
        self,
        cost: float,
        now: float,
        limit_at: float,
        by_deadline: bool,
        deadline: float | None,
        caller: str,
        tokens: float,
        key: str,
    ) -> None:
        clock = self._clock
        wkey = self._window(key)
        ci, cb = self._caller_args.get(caller, (0.0, 0.0))
        ri, rb = self._req
        ti, tb = self._tok
        args: list[object] = [
            "acquire",
            cost,
            tokens,
            _us(limit_at - now),
            ri,
            rb,
            ti,
            tb,
            ci,
            cb,
            "1" if wkey else "0",
            "",
            "",
        ]
        answer = await self._step(args, caller, wkey, deadline)
        code = int(answer[0])
        if code == 2:  # the caller's own slot is booked: wait for it, then the integration's
            await clock.sleep(float(answer[1]) / _US)
            now = clock.now()
            args[3], args[8], args[9] = _us(limit_at - now), 0, 0
            args[11], args[12] = answer[3], answer[4]
            answer = await self._step(args, caller, wkey, deadline)
            code = int(answer[0])
        wait = float(answer[1]) / _US
        if code == 0:
            why = answer[2].decode()
            reason = (
                "caller_limit"
                if why == "caller_limit"
                else ("deadline" if by_deadline else "max_wait")
            )
            raise self._reject(caller, wait, reason)
        self._available = float(answer[3]) if answer[3] != b"-1" else math.inf
        self._available_at = clock.now()
        if wait > 0:
            await clock.sleep(wait)

    def _caller_key(self, caller: str) -> str:
        return (
            self._runtime.key(self.integration, "c", caller)
            if caller in self._callers
            else self._key
        )

    def _window(self, key: str) -> str:
        return window_of(self._route_bucket, key)

    def _window_key(self, wkey: str) -> str:
        return self._runtime.key(self.integration, "w", wkey) if wkey else self._key

    def _publish_reject(self, caller: str, retry_after: float, reason: str) -> None:
        if self._hub is not None and self._hub.has_subscribers(RateLimitRejected):
            self._hub.publish(RateLimitRejected(self.integration, caller, retry_after, reason))

    def _reject(self, caller: str, retry_after: float, reason: str) -> RateLimited:
        return rate_limited(
            self.integration,
            caller,
            retry_after,
            reason,
            max_wait=self._max_wait,
            hub=self._hub,
            scope="global ",
            shared_by=" (shared by every agent through Redis)",
            knobs="requests_per_second, burst, max_wait",
        )

    # -- permits ------------------------------------------------------------------------------

    def _release(self, permit: Permit) -> None:
        if isinstance(permit, _GlobalPermit):
            if permit.gate is not None:
                permit.gate.release()
            if permit.local is not None:
                permit.local.release()

    def _correct(self, permit: Permit, delta: float) -> None:
        if isinstance(permit, _GlobalPermit) and permit.local is not None:
            permit.local.correct(permit.local.tokens + delta)
            return
        if not (self._tpm and self._runtime.health.available):
            return
        args = ["adjust", delta, self._tok[0]]
        self._runtime.spawn(self._runtime.eval([self._key, self._key, self._key], args))

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
        """Record a parsed signal locally (the fallback) and, in the background, in Redis."""
        self.fallback.apply(signal, key=key)
        if key and signal.bucket and not signal.is_global:
            if len(self._route_bucket) >= _MAX_KEYS:
                self._route_bucket.clear()
            self._route_bucket[key] = signal.bucket
        if not self._runtime.health.available:
            return
        wkey = "" if signal.is_global or not key else self._window(key)
        target = self._window_key(wkey)
        args = [
            "signal",
            _us(signal.retry_after) if signal.retry_after else -1,
            _opt(signal.remaining, 1.0, signal.reset_after),
            _opt(signal.reset_after, _US, signal.remaining),
            _opt(signal.tokens_remaining, 1.0, signal.tokens_reset_after),
            _opt(signal.tokens_reset_after, _US, signal.tokens_remaining),
        ]
        self._runtime.spawn(self._runtime.eval([target, target, target], args))

    # -- status -------------------------------------------------------------------------------

    def available(self) -> float:
        """Requests that could start now: the last answer of Redis, refilled since (or the
        fallback's own count while Redis is away)."""
        if not self._runtime.health.available:
            return 0.0 if self._runtime.on_unavailable == "deny" else self.fallback.available()
        n = self._available
        if self._rate and math.isfinite(n):
            n = min(self._burst, n + (self._clock.now() - self._available_at) * self._rate)
        if self._gate is not None:
            n = min(n, self._gate.available())
        return n


def _us(seconds: float) -> float:
    return round(max(0.0, seconds) * _US, 3)


def _opt(value: float | None, scale: float, partner: float | None) -> float:
    """A window value for the script, or -1 when it (or the value it goes with) is absent."""
    if value is None or partner is None:
        return -1
    return round(value * scale, 3)
