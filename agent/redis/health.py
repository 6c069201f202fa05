"""Is Redis reachable? A two-state machine, one warning per change, a probe that brings it back.

Calls never probe: while Redis is marked unavailable they take the fallback at once (no timeout
per call). One background task pings Redis with exponential backoff (``base`` doubling up to
``cap``, with jitter so a fleet does not reconnect in step) and marks it available again when a
ping answers. Each change is logged once as a warning naming the dependency and published as a
``RedisStateChanged`` event (telemetry's ``kilo.redis.available`` gauge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from agent.events import EventHub, RedisStateChanged

__all__ = ["RedisHealth"]

_log = logging.getLogger("agent.redis")


class RedisHealth:
    """Available or not; ``failed`` marks it down, the ``run`` task brings it back up."""

    def __init__(
        self,
        *,
        url: str,
        fallback: str,
        probe: Callable[[], Awaitable[object]],
        hub: EventHub | None = None,
        base: float = 0.1,
        cap: float = 5.0,
        on_recover: Callable[[], Awaitable[object]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.fallback = fallback
        self._probe = probe
        self._hub = hub
        self._base = base
        self._cap = cap
        self._on_recover = on_recover
        self._clock = clock
        self.available = True
        self.reason = ""
        self.changes = 0  # state changes so far (tests, status)
        self._next_probe = 0.0
        self._down: asyncio.Event | None = None

    def failed(self, error: BaseException | str) -> None:
        """An operation failed because of Redis: mark it unavailable (logged once)."""
        if not self.available:
            return
        reason = error if isinstance(error, str) else type(error).__name__
        self.available = False
        self.reason = reason
        self._next_probe = self._clock() + self._base
        self._changed()
        if self._down is not None:
            self._down.set()

    def retry_in(self) -> float:
        """Seconds until the next probe (0 when available): the RetryInfo of a denied call."""
        return 0.0 if self.available else max(0.0, self._next_probe - self._clock())

    def _recovered(self) -> None:
        self.available = True
        self.reason = ""
        self._changed()

    def _changed(self) -> None:
        self.changes += 1
        if self.available:
            _log.warning(
                "redis at %s is reachable again: scope: global limits and shared tokens are "
                "shared through it again",
                self.url,
                extra={"dependency": "redis", "redis_available": True},
            )
        else:
            doing = (
                "each agent enforces its local share of every scope: global limit"
                if self.fallback == "local"
                else "calls to scope: global integrations fail with RATE_LIMITER_UNAVAILABLE"
            )
            _log.warning(
                "redis at %s is unreachable (%s): %s, and tokens are refreshed per agent, "
                "until it answers again; reconnecting with backoff",
                self.url,
                self.reason,
                doing,
                extra={"dependency": "redis", "redis_available": False, "reason": self.reason},
            )
        if self._hub is not None:
            self._hub.publish(
                RedisStateChanged(self.available, self.url, self.reason, self.fallback)
            )

    async def run(self) -> None:
        """Probe while unavailable, with backoff; sleep (no work) while available."""
        self._down = down = asyncio.Event()
        if not self.available:
            down.set()
        while True:
            await down.wait()
            delay = self._base
            while not self.available:
                self._next_probe = self._clock() + delay
                await asyncio.sleep(delay)
                try:
                    await self._probe()
                except Exception as exc:  # any failure keeps it down; the reason may change
                    self.reason = type(exc).__name__
                    delay = min(self._cap, delay * 2) * (0.75 + 0.5 * random.random())  # noqa: S311
                    continue
                if self._on_recover is not None:
                    with contextlib.suppress(Exception):
                        await self._on_recover()
                down.clear()
                self._recovered()
