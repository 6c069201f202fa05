"""Time for the policies: a monotonic ``now()``, a wall clock, timers and an async ``sleep``.

Every policy takes a ``Clock`` so tests can move time by hand. Waiting never polls: a waiter is a
future that a single timer resolves (``call_later``), so a thousand queued calls cost a thousand
idle futures and timers, no CPU.

``FakeClock`` keeps its own timer heap instead of the event loop's. ``advance(dt)`` fires the due
timers synchronously in time order (``now()`` reads each timer's own instant while it fires);
``await run_for(dt)`` does the same but lets the event loop run between timers, so a task woken
by one timer can schedule the next sleep before time moves on. A ten-minute backoff schedule
therefore runs in microseconds of real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "MonotonicClock", "Timer"]


class Timer(Protocol):
    """A scheduled callback that can be cancelled (``asyncio.TimerHandle`` fits)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Where policies read time and schedule wake-ups."""

    def now(self) -> float:
        """Monotonic seconds; deadlines passed to policies are on this scale."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (for epoch and HTTP-date reset headers)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once, ``delay`` seconds from now, on the running event loop."""
        ...

    async def sleep(self, delay: float) -> None:
        """Suspend the calling task for ``delay`` seconds (a timer, never a polling loop)."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic``/``time.time`` and the running loop's timers."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        # call_later (not call_at): the delay is measured on our clock, so this stays right even on
        # loops whose time() is not time.monotonic() (uvloop keeps a millisecond-cached clock).
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay))


SYSTEM_CLOCK = MonotonicClock()


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told to; its timers fire from ``advance``/``run_for``."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._heap: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = _FakeTimer(self._now + max(0.0, delay), callback)
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_later(delay, wake)
        try:
            await fut
        finally:
            timer.cancel()

    @property
    def pending(self) -> int:
        """Timers scheduled and not cancelled (a leak check for tests)."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def next_deadline(self) -> float | None:
        """When the earliest live timer fires, or None."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def _fire_due(self, target: float, *, one: bool) -> bool:
        fired = False
        while self._heap and self._heap[0][0] <= target:
            when, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback()
            fired = True
            if one:
                break
        return fired

    def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in order, without yielding to the loop."""
        target = self._now + max(0.0, seconds)
        self._fire_due(target, one=False)
        self._now = target

    async def run_for(self, seconds: float, *, settle: int = 20) -> None:
        """Move time forward timer by timer, letting woken tasks run (and re-arm) in between."""
        target = self._now + max(0.0, seconds)
        await _settle(settle)
        while self._fire_due(target, one=True):
            await _settle(settle)
        self._now = target
        await _settle(settle)


async def _settle(rounds: int) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)
