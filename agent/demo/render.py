"""How the demo looks: one aligned timeline row per call, a title line per step, notes between.

Columns: time since the tour started, the call the app made, what came back (the HTTP status, or
the gRPC code and the ``ErrorInfo`` reason), the ``RetryInfo`` delay, the upstream attempts, the
rate-limit wait, and the integration that answered (``CallMeta.integration``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Outcome", "Printer", "seconds"]


@dataclass(slots=True)
class Outcome:
    """One call as the app saw it: an HTTP answer (``status``) or a gRPC error (``code``)."""

    at: float  # seconds since the tour started, when the answer arrived
    call: str  # e.g. "GET /items"
    status: int | None = None
    code: str = ""  # gRPC status code name, e.g. "RESOURCE_EXHAUSTED"
    reason: str = ""  # google.rpc.ErrorInfo.reason, e.g. "RATE_LIMITED"
    retry_after: float | None = None  # google.rpc.RetryInfo.retry_delay
    attempts: int | None = None
    wait: float | None = None  # CallMeta.rate_limit_wait
    integration: str = ""  # CallMeta.integration: who answered
    cache_hit: bool = False
    trace_id: str = ""
    body: bytes = b""
    note: str = ""  # appended to the answer, e.g. "cache hit"

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def answer(self) -> str:
        if self.status is not None:
            extra = [self.note] if self.note else []
            if self.cache_hit:
                extra.insert(0, "cache hit")
            return " ".join([str(self.status), *(f"({e})" for e in extra)])
        return f"{self.code} {self.reason}".strip()


def seconds(value: float | None) -> str:
    """``0ms``, ``480ms``, ``1.50s``; empty for None."""
    if value is None:
        return ""
    if value < 1.0:
        return f"{round(value * 1000)}ms"
    return f"{value:.2f}".rstrip("0").rstrip(".") + "s"


_WIDTHS = (6, 13, 31, 5, 3, 5)  # the rows fit 80 columns


def _line(cells: tuple[str, str, str, str, str, str, str]) -> str:
    t, call, answer, retry, att, wait, by = cells
    w = _WIDTHS
    return (
        f"{t:>{w[0]}}  {call:<{w[1]}}  {answer:<{w[2]}} {retry:>{w[3]}} "
        f"{att:>{w[4]}} {wait:>{w[5]}}  {by}"
    ).rstrip()


class Printer:
    """Writes the tour to ``out`` as it happens (flushed, so a slow step is visibly running)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def header(self) -> None:
        self.say(_line(("time", "app asked", "answer", "retry", "att", "wait", "answered")))

    def step(self, number: str, title: str) -> None:
        self.say()
        self.say(f"{number:>2}. {title}")

    def note(self, text: str) -> None:
        self.say(f"{'':>{_WIDTHS[0]}}  -> {text}")

    def row(self, o: Outcome) -> None:
        self.say(
            _line(
                (
                    f"+{o.at:.2f}s",
                    o.call,
                    o.answer(),
                    seconds(o.retry_after),
                    "" if o.attempts is None else str(o.attempts),
                    seconds(o.wait),
                    o.integration,
                )
            )
        )
