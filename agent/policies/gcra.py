"""GCRA (the generic cell rate algorithm): a token bucket whose whole state is one number.

The state is the theoretical arrival time (TAT). ``gcra_reserve`` is the pure transition: the
Redis-backed global limiter's Lua script mirrors it line for line (``now`` from Redis ``TIME``,
the TAT under one key, floats returned as strings), so local and global limits behave alike.
"""

from __future__ import annotations

import math

__all__ = ["GcraBucket", "gcra_reserve"]


def gcra_reserve(
    tat: float, now: float, *, interval: float, burst: float, cost: float
) -> tuple[float, float]:
    """The GCRA step: ``(start, new_tat)`` for a call of ``cost`` arriving at ``now``.

    ``interval`` is seconds per unit (1/rate), ``burst`` the units that may pass at once. The call
    conforms from ``start`` (== ``now`` when it may go at once); booking it moves the TAT to
    ``new_tat``. A call costing more than ``burst`` can never conform: it goes when the bucket is
    full and leaves the bucket in debt, so the calls after it wait. Pure: Redis mirrors it.
    """
    start = tat + interval * (min(cost, burst) - burst)
    if start < now:
        start = now
    new_tat = (tat if tat > start else start) + interval * cost
    return start, new_tat


class GcraBucket:
    """One GCRA state (in memory). ``rate`` units per second, ``burst`` units at once."""

    __slots__ = ("burst", "interval", "tat")

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.interval = 1.0 / rate
        self.burst = float(burst)
        self.tat = -math.inf  # full

    def earliest(self, now: float, cost: float) -> float:
        return gcra_reserve(self.tat, now, interval=self.interval, burst=self.burst, cost=cost)[0]

    def book(self, start: float, cost: float) -> tuple[float, float]:
        """Book ``cost`` at ``start`` (>= earliest); returns ``(old_tat, new_tat)`` for refunds."""
        old = self.tat
        self.tat = (old if old > start else start) + self.interval * cost
        return old, self.tat

    def unbook(self, old: float, new: float) -> None:
        """Undo a booking if nothing was booked after it (else keep it: conservative, FIFO-safe)."""
        if self.tat == new:
            self.tat = old

    def adjust(self, now: float, delta: float) -> None:
        """Debit (delta > 0) or refund (delta < 0) units after the fact; never above full."""
        if delta >= 0:
            self.tat = max(self.tat, now) + self.interval * delta
        else:
            self.tat = max(self.tat + self.interval * delta, min(self.tat, now))

    def available(self, now: float) -> float:
        used = (self.tat - now) / self.interval if self.tat > now else 0.0
        return max(0.0, self.burst - used)
