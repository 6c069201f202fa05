"""Circuit breaker: resilience4j transitions on a fake clock, slow calls, the time window."""

from __future__ import annotations

import asyncio

import pytest

from agent.errors import CircuitOpen, RateLimited, UpstreamTimeout, UpstreamUnreachable
from agent.events import BreakerStateChanged, EventHub
from agent.policies import CircuitBreaker, CircuitState, FakeClock, is_failure


def make(clock: FakeClock, hub: EventHub | None = None, **kw: float) -> CircuitBreaker:
    params: dict[str, float] = {
        "failure_rate": 0.5,
        "minimum_calls": 4,
        "window": 10,
        "open_for": 30,
        "half_open_calls": 2,
    }
    params.update(kw)
    return CircuitBreaker(integration="openai", clock=clock, hub=hub, **params)  # type: ignore[arg-type]


def state(br: CircuitBreaker) -> CircuitState:
    return br.state  # a call, so that mypy does not narrow the property across transitions


def events(hub: EventHub) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    hub.subscribe(BreakerStateChanged, lambda e: seen.append((e.old, e.new)))
    return seen


def test_no_decision_below_minimum_calls() -> None:
    br = make(FakeClock())
    for _ in range(3):
        assert br.allow()
        br.record(False, 0.1)
    assert state(br) is CircuitState.CLOSED


def test_opens_at_the_failure_rate_and_refuses_with_time_left() -> None:
    clock = FakeClock()
    hub = EventHub()
    seen = events(hub)
    br = make(clock, hub)
    for ok in (True, False, True):
        br.record(ok, 0.1)
    assert state(br) is CircuitState.CLOSED
    br.record(False, 0.1)  # 2 of 4 failed: 50% >= 50% opens (resilience4j: >=)
    assert state(br) is CircuitState.OPEN
    assert seen == [("CLOSED", "OPEN")]
    clock.advance(10)
    with pytest.raises(CircuitOpen) as info:
        br.allow()
    assert info.value.retry_after == pytest.approx(20)
    assert info.value.integration == "openai"
    assert "open_for" in info.value.message
    assert "fallback" in info.value.message
    assert br.retry_after() == pytest.approx(20)


def test_stays_closed_when_failures_are_below_the_rate() -> None:
    br = make(FakeClock())
    for i in range(40):
        br.record(i % 3 != 2, 0.1)  # every third fails: never 50%
    assert state(br) is CircuitState.CLOSED


def _open(br: CircuitBreaker) -> None:
    for _ in range(4):
        br.record(False, 0.1)
    assert state(br) is CircuitState.OPEN


def test_half_open_lets_exactly_the_trial_calls_through_then_closes_on_success() -> None:
    clock = FakeClock()
    hub = EventHub()
    seen = events(hub)
    br = make(clock, hub)
    _open(br)
    clock.advance(30)
    assert br.allow()
    assert br.allow()
    assert state(br) is CircuitState.HALF_OPEN
    with pytest.raises(CircuitOpen) as info:
        br.allow()
    assert info.value.retry_after == CircuitBreaker.HALF_OPEN_RETRY_AFTER
    br.record(True, 0.1)
    assert state(br) is CircuitState.HALF_OPEN  # decides only after both trials
    br.record(True, 0.1)
    assert state(br) is CircuitState.CLOSED
    assert seen == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    # the window starts fresh: the failures that opened it are forgotten
    for _ in range(3):
        br.record(False, 0.1)
    assert state(br) is CircuitState.CLOSED


def test_half_open_failure_reopens_for_another_open_for() -> None:
    clock = FakeClock()
    br = make(clock)
    _open(br)
    clock.advance(30)
    br.allow()
    br.allow()
    br.record(True, 0.1)
    br.record(False, 0.1)  # 1 of 2 failed: 50% -> open again
    assert state(br) is CircuitState.OPEN
    with pytest.raises(CircuitOpen) as info:
        br.allow()
    assert info.value.retry_after == pytest.approx(30)


def test_slow_calls_open_the_breaker_at_the_slow_call_rate() -> None:
    br = make(FakeClock(), slow_call_duration=2.0, slow_call_rate=0.75)
    for d in (0.1, 2.5, 3.0):
        br.record(True, d)
    assert state(br) is CircuitState.CLOSED
    br.record(True, 2.0)  # 3 of 4 slow (>= threshold counts), all successful
    assert state(br) is CircuitState.OPEN


def test_slow_calls_do_not_count_when_disabled() -> None:
    br = make(FakeClock(), slow_call_duration=0)
    for _ in range(20):
        br.record(True, 120.0)
    assert state(br) is CircuitState.CLOSED


def test_failures_slide_out_of_the_time_window() -> None:
    clock = FakeClock()
    br = make(clock, window=10)
    for _ in range(3):
        br.record(False, 0.1)
    clock.advance(10)  # those three are now outside the 10 s window
    for _ in range(3):
        br.record(True, 0.1)
    br.record(False, 0.1)  # window: 3 ok + 1 failed = 25%
    assert state(br) is CircuitState.CLOSED
    clock.advance(3)
    br.record(False, 0.1)
    br.record(False, 0.1)  # 3 ok + 3 failed = 50%
    assert state(br) is CircuitState.OPEN


def test_partial_slide_keeps_the_recent_seconds() -> None:
    clock = FakeClock(start=1000.0)
    br = make(clock, window=10, minimum_calls=6)
    for second in range(6):  # one failure per second, 1000..1005
        br.record(second % 2 == 0, 0.1)
        clock.advance(1)
    clock.advance(4)  # now 1010: seconds 1000 and before fall out (window 1001..1010)
    br.record(False, 0.1)  # 1001..1005 + this: 2 ok, 4 failed
    assert state(br) is CircuitState.OPEN


def test_outcomes_recorded_while_open_are_ignored() -> None:
    clock = FakeClock()
    br = make(clock)
    _open(br)
    for _ in range(50):
        br.record(True, 0.1)
    assert state(br) is CircuitState.OPEN
    clock.advance(30)
    assert br.allow()


def test_reset_closes() -> None:
    br = make(FakeClock())
    _open(br)
    br.reset()
    assert state(br) is CircuitState.CLOSED
    assert br.allow()


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        CircuitBreaker(failure_rate=0)
    with pytest.raises(ValueError, match="minimum_calls"):
        CircuitBreaker(minimum_calls=0)


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (200, None, False),
        (404, None, False),
        (429, None, False),
        (500, None, True),
        (503, None, True),
        (None, UpstreamUnreachable("reset"), True),
        (None, UpstreamTimeout("slow"), True),
        (None, RateLimited("x", retry_after=1), False),
        (None, ConnectionResetError(), True),
        (None, asyncio.CancelledError(), False),
    ],
)
def test_is_failure(status: int | None, error: BaseException | None, expected: bool) -> None:
    assert is_failure(status, error) is expected


def test_is_failure_with_configured_statuses() -> None:
    assert is_failure(408, None, {408, 500})
    assert not is_failure(503, None, {500})
