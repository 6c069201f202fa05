"""Retry decisions: full-jitter backoff, Retry-After, idempotency, deadline, budget, events."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from agent.errors import CircuitOpen, RateLimited, UpstreamTimeout, UpstreamUnreachable
from agent.events import EventHub, RetryScheduled
from agent.policies import FakeClock, RetryBudget, RetryDecision, RetryPolicy


def policy(clock: FakeClock | None = None, rnd: float = 1.0, **kw: object) -> RetryPolicy:
    return RetryPolicy(
        integration="slack",
        clock=clock or FakeClock(),
        random=lambda: rnd,
        **kw,  # type: ignore[arg-type]
    )


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    p = policy(rnd=1.0, initial_backoff=0.1, max_backoff=5.0)
    assert [round(p.backoff(n), 6) for n in range(1, 9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5]
    assert policy(rnd=0.25, initial_backoff=0.1, max_backoff=5.0).backoff(3) == pytest.approx(0.1)
    assert policy(rnd=0.0).backoff(5) == 0.0
    assert policy(rnd=1.0, max_backoff=5.0).backoff(10_000) == 5.0  # no overflow


def test_real_jitter_spreads_delays_inside_the_cap() -> None:
    p = RetryPolicy(initial_backoff=1.0, max_backoff=8.0)
    delays = [p.backoff(4) for _ in range(2000)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert min(delays) < 1.0
    assert max(delays) > 7.0


@pytest.mark.parametrize(
    ("method", "key", "expected"),
    [
        ("GET", False, True),
        ("head", False, True),
        ("OPTIONS", False, True),
        ("TRACE", False, True),
        ("PUT", False, True),
        ("DELETE", False, True),
        ("POST", False, False),
        ("PATCH", False, False),
        ("POST", True, True),
        ("PATCH", True, True),
    ],
)
def test_only_idempotent_methods_or_calls_with_a_key_are_resent(
    method: str, key: bool, expected: bool
) -> None:
    assert policy().should_retry(method, 503, has_idempotency_key=key) is expected


def test_retryable_outcomes() -> None:
    p = policy(on_status=(429, 502, 503, 504))
    assert p.should_retry("GET", 503)
    assert not p.should_retry("GET", 500)
    assert not p.should_retry("GET", 404)
    assert p.should_retry("GET", error=UpstreamUnreachable("reset"))
    assert p.should_retry("GET", error=UpstreamTimeout("attempt timed out"))
    assert p.should_retry("GET", error=ConnectionResetError())
    assert not p.should_retry("GET", error=RateLimited("x", retry_after=1))
    assert not p.should_retry("GET", error=CircuitOpen("x", retry_after=1))
    assert not p.should_retry("GET", error=ValueError())


def test_decide_uses_backoff_and_stops_after_max_attempts() -> None:
    p = policy(rnd=0.5, max_attempts=3, initial_backoff=0.2)
    d = p.decide(attempt=1, method="GET", status=503)
    assert d == RetryDecision(True, pytest.approx(0.1), "503")  # type: ignore[arg-type]
    assert p.decide(attempt=2, method="GET", status=503).delay == pytest.approx(0.2)
    assert p.decide(attempt=3, method="GET", status=503) == RetryDecision(
        False, reason="attempts_exhausted"
    )
    assert p.decide(attempt=1, method="GET", status=200).reason == "success"
    assert p.decide(attempt=1, method="POST", status=503).reason == "not_idempotent"
    assert p.decide(attempt=1, method="GET", status=400).reason == "not_retryable"
    d = p.decide(attempt=1, method="GET", error=UpstreamUnreachable("refused"))
    assert d.retry
    assert d.reason == "UpstreamUnreachable"


def test_retry_after_is_honoured_in_every_format() -> None:
    clock = FakeClock(wall_start=1445412420.0)  # 2015-10-21T07:27:00Z
    p = policy(clock, rnd=0.0, max_attempts=5)
    d = p.decide(attempt=1, method="GET", status=429, headers={"retry-after": "7"})
    assert (d.retry, d.delay, d.from_retry_after) == (True, 7, True)
    d = p.decide(
        attempt=1,
        method="GET",
        status=429,
        headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
    )
    assert d.delay == pytest.approx(60)
    d = p.decide(
        attempt=1, method="GET", status=429, headers={"retry-after-ms": "250", "retry-after": "1"}
    )
    assert d.delay == pytest.approx(0.25)
    ignore = policy(clock, rnd=0.0, respect_retry_after=False)
    d = ignore.decide(attempt=1, method="GET", status=429, headers={"retry-after": "7"})
    assert d.delay == 0.0
    assert not d.from_retry_after


def test_no_retry_when_the_wait_reaches_the_deadline() -> None:
    clock = FakeClock()
    p = policy(clock, rnd=1.0, initial_backoff=1.0, max_backoff=1.0)
    d = p.decide(
        attempt=1,
        method="GET",
        status=429,
        headers={"retry-after": "30"},
        deadline=clock.now() + 10,
    )
    assert d == RetryDecision(False, reason="deadline")
    assert p.decide(attempt=1, method="GET", status=503, deadline=clock.now() + 1).reason == (
        "deadline"
    )
    assert p.decide(attempt=1, method="GET", status=503, deadline=clock.now() + 1.5).retry


def test_upstream_x_should_retry_overrides_the_status_rule() -> None:
    p = policy()
    assert not p.decide(
        attempt=1, method="GET", status=503, headers={"x-should-retry": "false"}
    ).retry
    assert p.decide(attempt=1, method="GET", status=409, headers={"x-should-retry": "true"}).retry
    assert not p.decide(  # the method rule still holds
        attempt=1, method="POST", status=409, headers={"x-should-retry": "true"}
    ).retry


def test_retry_scheduled_event() -> None:
    hub = EventHub()
    seen: list[RetryScheduled] = []
    hub.subscribe(RetryScheduled, seen.append)
    p = RetryPolicy(integration="slack", clock=FakeClock(), hub=hub, random=lambda: 1.0)
    p.decide(attempt=1, method="GET", status=429, headers={"retry-after": "2"})
    p.decide(attempt=1, method="POST", status=503)  # not retried: no event
    assert seen == [RetryScheduled("slack", 1, 2.0, "429", True)]


def test_budget_allows_a_floor_plus_a_share_of_calls() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_per_second=0.5, window=10, clock=clock)  # floor: 5
    for _ in range(100):
        budget.record_call()
    granted = sum(budget.try_withdraw() for _ in range(100))
    assert granted == 5 + 20
    assert budget.balance() == 0
    clock.advance(10)  # the window slid past all of it
    assert budget.balance() == 5


def test_budget_caps_retries_during_an_outage() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_per_second=0, window=10, clock=clock)
    p = policy(clock, rnd=0.0, max_attempts=5, budget=budget)
    attempts = 0
    for _ in range(200):  # every attempt fails with 503
        p.record_call()
        attempt = 1
        attempts += 1
        while p.decide(attempt=attempt, method="GET", status=503).retry:
            attempt += 1
            attempts += 1
        clock.advance(0.01)
    assert attempts <= 200 * 1.1 + 1  # not 200 x 5
    assert p.decide(attempt=1, method="GET", status=503).reason == "budget_exhausted"


async def test_a_ten_minute_backoff_schedule_runs_in_microseconds() -> None:
    clock = FakeClock()
    p = RetryPolicy(
        max_attempts=20, initial_backoff=1.0, max_backoff=60.0, clock=clock, random=lambda: 1.0
    )
    log: list[float] = []

    async def call_with_retries() -> int:
        attempt = 1
        while True:
            log.append(clock.now())
            d = p.decide(attempt=attempt, method="GET", status=503)
            if not d.retry:
                return attempt
            await clock.sleep(d.delay)
            attempt += 1

    started = time.perf_counter()
    task = asyncio.create_task(call_with_retries())
    await clock.run_for(900)
    assert await task == 20
    elapsed = time.perf_counter() - started
    gaps = [b - a for a, b in itertools.pairwise(log)]
    assert gaps[:7] == [1, 2, 4, 8, 16, 32, 60]
    assert set(gaps[6:]) == {60}
    assert log[-1] - log[0] == sum(gaps) == 843  # 14 minutes of backoff
    assert elapsed < 0.5
