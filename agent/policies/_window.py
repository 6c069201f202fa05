"""Counts over a sliding time window, aggregated in 1-second buckets (resilience4j's shape).

Memory is one small list per second of window and each update is O(1) amortized: moving to a new
second clears only the buckets that fell out of the window since the last update.
"""

from __future__ import annotations

import math

__all__ = ["SlidingCounts"]


class SlidingCounts:
    """``fields`` integer counters summed over the last ``window`` seconds (current included)."""

    __slots__ = ("_buckets", "_head", "_size", "_totals")

    def __init__(self, window: float, fields: int) -> None:
        self._size = max(1, math.ceil(window))
        self._buckets = [[0] * fields for _ in range(self._size)]
        self._totals = [0] * fields
        self._head = -1  # the epoch second of the newest bucket; -1 = nothing yet

    def _advance(self, now: float) -> list[int]:
        sec = int(now)
        head = self._head
        if sec > head:
            size = self._size
            if head < 0 or sec - head >= size:
                for bucket in self._buckets:
                    for i in range(len(bucket)):
                        bucket[i] = 0
                for i in range(len(self._totals)):
                    self._totals[i] = 0
            else:
                totals = self._totals
                for s in range(head + 1, sec + 1):
                    bucket = self._buckets[s % size]
                    for i, n in enumerate(bucket):
                        if n:
                            totals[i] -= n
                            bucket[i] = 0
            self._head = sec
            return self._buckets[sec % size]
        return self._buckets[head % self._size]  # same second (or a clock that went backwards)

    def add(self, now: float, field: int, n: int = 1) -> None:
        self._advance(now)[field] += n
        self._totals[field] += n

    def totals(self, now: float) -> list[int]:
        """The window's totals; the list is live, copy it to keep it."""
        self._advance(now)
        return self._totals

    def clear(self) -> None:
        self._head = -1
        self._advance(0.0)
        self._head = -1
