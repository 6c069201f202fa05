"""LocalLimiter: GCRA admission, FIFO waits, max_wait/deadline, caller sub-limits, bulkhead,
token budgets and the adaptive hold, all on a fake clock."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable

import pytest

from agent.errors import RateLimited
from agent.events import EventHub, RateLimitRejected, UpstreamHold
from agent.policies import (
    CallerLimit,
    FakeClock,
    GcraBucket,
    LocalLimiter,
    Permit,
    UnlimitedLimiter,
    gcra_reserve,
    parser_for,
)


def test_gcra_reserve_admits_a_burst_then_spaces_calls_by_the_interval() -> None:
    tat, now = -math.inf, 100.0
    starts = []
    for _ in range(5):
        start, tat = gcra_reserve(tat, now, interval=0.5, burst=3, cost=1)
        starts.append(start)
    assert starts == [100.0, 100.0, 100.0, 100.5, 101.0]


def test_gcra_reserve_lets_a_call_larger_than_the_burst_go_when_full_and_leaves_debt() -> None:
    start, tat = gcra_reserve(-math.inf, 10.0, interval=1.0, burst=5, cost=8)
    assert start == 10.0
    assert tat == 18.0
    start, _ = gcra_reserve(tat, 10.0, interval=1.0, burst=5, cost=1)
    assert start == 14.0  # the debt (3 units) plus this call's unit, minus the burst


def test_bucket_refund_and_debit_after_the_fact() -> None:
    b = GcraBucket(rate=1.0, burst=10)
    b.book(0.0, 10)
    assert b.available(0.0) == 0
    b.adjust(0.0, -4)  # refund
    assert b.available(0.0) == pytest.approx(4)
    b.adjust(0.0, -100)  # never above full
    assert b.available(0.0) == pytest.approx(10)
    b.adjust(0.0, 6)  # debit
    assert b.available(0.0) == pytest.approx(4)


async def test_burst_passes_at_once_then_next_call_is_refused_with_exact_retry_after() -> None:
    clock = FakeClock()
    lim = LocalLimiter(integration="openai", requests_per_second=2, burst=3, clock=clock)
    for _ in range(3):
        permit = await lim.acquire()
        assert permit.waited == 0
    with pytest.raises(RateLimited) as info:
        await lim.acquire()
    assert info.value.retry_after == pytest.approx(0.5)
    assert info.value.integration == "openai"
    assert "max_wait" in info.value.message
    assert "requests_per_second" in info.value.message
    # the refused call consumed nothing: half a second later exactly one slot is free
    clock.advance(0.5)
    await lim.acquire()
    with pytest.raises(RateLimited):
        await lim.acquire()


async def test_call_waits_for_its_slot_on_a_timer_and_reports_the_wait() -> None:
    clock = FakeClock()
    lim = LocalLimiter(requests_per_second=1, burst=1, max_wait=5, clock=clock)
    await lim.acquire()
    task = asyncio.create_task(lim.acquire())
    await clock.run_for(0.999)
    assert not task.done()
    await clock.run_for(0.001)
    permit = task.result()
    assert permit.waited == pytest.approx(1.0)
    assert clock.pending == 0


async def test_wait_longer_than_max_wait_is_refused_immediately_not_after_waiting() -> None:
    clock = FakeClock()
    lim = LocalLimiter(requests_per_second=1, burst=1, max_wait=2, clock=clock)
    await lim.acquire()
    waiters = [asyncio.create_task(lim.acquire()) for _ in range(2)]  # slots at +1s, +2s
    await clock.run_for(0)
    before = clock.now()
    with pytest.raises(RateLimited) as info:
        await lim.acquire()  # its slot would be at +3s > max_wait
    assert clock.now() == before
    assert info.value.retry_after == pytest.approx(3.0)
    await clock.run_for(2)
    assert all(w.done() and w.exception() is None for w in waiters)


async def test_deadline_caps_the_wait_below_max_wait() -> None:
    clock = FakeClock()
    hub = EventHub()
    seen: list[RateLimitRejected] = []
    hub.subscribe(RateLimitRejected, seen.append)
    lim = LocalLimiter(
        integration="gh", requests_per_second=1, burst=1, max_wait=10, clock=clock, hub=hub
    )
    await lim.acquire()
    with pytest.raises(RateLimited) as info:
        await lim.acquire(deadline=clock.now() + 0.5)
    assert info.value.retry_after == pytest.approx(1.0)
    assert "deadline" in info.value.message
    assert seen == [RateLimitRejected("gh", "", pytest.approx(1.0), "deadline")]  # type: ignore[arg-type]
    permit = await asyncio.wait_for(_drive(clock, lim.acquire(deadline=clock.now() + 1.0)), 1)
    assert permit.waited == pytest.approx(1.0)


async def _drive(clock: FakeClock, coro: Awaitable[Permit]) -> Permit:
    task = asyncio.ensure_future(coro)
    while not task.done():
        await clock.run_for(0.25)
    return task.result()


async def test_waiters_are_admitted_first_in_first_out() -> None:
    clock = FakeClock()
    lim = LocalLimiter(requests_per_second=10, burst=1, max_wait=60, clock=clock)
    order: list[int] = []

    async def call(i: int) -> None:
        await lim.acquire()
        order.append(i)

    tasks = [asyncio.create_task(call(i)) for i in range(20)]
    await clock.run_for(5)
    await asyncio.gather(*tasks)
    assert order == list(range(20))
    assert clock.now() - 5 == pytest.approx(1000.0)


async def test_cancelled_last_waiter_gives_its_slot_back() -> None:
    clock = FakeClock()
    lim = LocalLimiter(requests_per_second=1, burst=1, max_wait=10, clock=clock)
    await lim.acquire()
    waiter = asyncio.create_task(lim.acquire())
    await clock.run_for(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert clock.pending == 0
    task = asyncio.create_task(lim.acquire())
    await clock.run_for(1.0)  # the freed slot at +1s goes to the next caller, not +2s
    assert task.done()


async def test_caller_sub_limit_throttles_that_caller_only() -> None:
    clock = FakeClock()
    lim = LocalLimiter(
        requests_per_second=100,
        burst=100,
        max_wait=5,
        caller_limits={"batch": CallerLimit(rate=1, burst=1)},
        clock=clock,
    )
    await lim.acquire(caller="batch")
    slow = asyncio.create_task(lim.acquire(caller="batch"))  # waits 1s for its own slot
    await clock.run_for(0)
    fast = [await lim.acquire(caller="checkout") for _ in range(10)]
    assert all(p.waited == 0 for p in fast)
    assert not slow.done()
    await clock.run_for(1)
    assert slow.result().waited == pytest.approx(1.0)
    with pytest.raises(RateLimited) as info:
        await lim.acquire(caller="batch", deadline=clock.now() + 0.1)
    assert "caller 'batch'" in info.value.message


async def test_default_caller_limit_gives_each_caller_its_own_bucket() -> None:
    clock = FakeClock()
    lim = LocalLimiter(default_caller_limit=CallerLimit(rate=1, burst=2), clock=clock)
    for caller in ("a", "b"):
        await lim.acquire(caller=caller)
        await lim.acquire(caller=caller)
        with pytest.raises(RateLimited):
            await lim.acquire(caller=caller)


async def test_bulkhead_caps_concurrency_and_hands_slots_over_in_order() -> None:
    clock = FakeClock()
    lim = LocalLimiter(max_concurrent=2, max_wait=10, clock=clock)
    p1 = await lim.acquire()
    p2 = await lim.acquire()
    assert lim.available() == 0
    w3 = asyncio.create_task(lim.acquire())
    w4 = asyncio.create_task(lim.acquire())
    await clock.run_for(1)
    assert not w3.done()
    assert not w4.done()
    async with p1:
        pass
    await clock.run_for(0)
    assert w3.done()
    assert not w4.done()
    p2.release()
    p2.release()  # idempotent: must not free a second slot
    await clock.run_for(0)
    assert w4.done()
    assert lim.available() == 0


async def test_bulkhead_wait_is_bounded_and_refused_with_a_retry_hint() -> None:
    clock = FakeClock()
    lim = LocalLimiter(max_concurrent=1, max_wait=2, clock=clock)
    permit = await lim.acquire()
    waiter = asyncio.create_task(lim.acquire())
    await clock.run_for(2)
    with pytest.raises(RateLimited) as info:
        await waiter
    assert "max_concurrent" in info.value.message
    assert lim.queued_concurrency == 0
    permit.release()
    assert (await lim.acquire()).waited == 0


async def test_token_budget_is_charged_and_corrected_from_reported_usage() -> None:
    clock = FakeClock()
    lim = LocalLimiter(tokens_per_minute=6000, max_wait=5, clock=clock)  # 100 tokens/s
    permit = await lim.acquire(tokens=6000)  # the estimate takes the whole minute
    with pytest.raises(RateLimited) as info:
        await lim.acquire(tokens=1000)
    assert info.value.retry_after == pytest.approx(10.0)
    permit.correct(1500)  # usage said 1500: 4500 refunded
    assert permit.tokens == 1500
    assert (await lim.acquire(tokens=4000)).waited == 0
    p2 = await lim.acquire(tokens=500)
    p2.correct(2500)  # debit: the response used more than estimated
    with pytest.raises(RateLimited) as info:
        await lim.acquire(tokens=100, deadline=clock.now() + 1)
    assert info.value.retry_after == pytest.approx(21.0)


async def test_openai_headers_hold_calls_until_reset_instead_of_spending_429s() -> None:
    clock = FakeClock()
    hub = EventHub()
    holds: list[UpstreamHold] = []
    hub.subscribe(UpstreamHold, holds.append)
    lim = LocalLimiter(
        integration="openai", max_wait=5, parser=parser_for("openai"), clock=clock, hub=hub
    )
    lim.observe(
        200,
        {
            "X-RateLimit-Remaining-Requests": "2",
            "x-ratelimit-reset-requests": "2s",
            "x-ratelimit-remaining-tokens": "159976",
            "x-ratelimit-reset-tokens": "9ms",
        },
    )
    assert lim.available() == 2
    await lim.acquire()
    await lim.acquire()
    assert lim.available() == 0
    assert holds == []
    third = asyncio.create_task(lim.acquire())
    await clock.run_for(1.9)
    assert not third.done()
    await clock.run_for(0.1)
    assert third.result().waited == pytest.approx(2.0)
    # a 429 with retry-after-ms holds everything, and is refused outright beyond max_wait
    lim.observe(429, {"retry-after-ms": "7500", "x-ratelimit-remaining-requests": "0"})
    assert holds[-1].source == "retry_after"
    assert holds[-1].hold_for == pytest.approx(7.5)
    with pytest.raises(RateLimited) as info:
        await lim.acquire()
    assert info.value.retry_after == pytest.approx(7.5)


async def test_upstream_token_window_holds_a_call_that_needs_more_tokens_than_left() -> None:
    clock = FakeClock()
    lim = LocalLimiter(max_wait=60, parser=parser_for("anthropic"), clock=clock)
    lim.observe(
        200,
        {
            "anthropic-ratelimit-tokens-remaining": "1000",
            "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:50Z",  # wall + 30 s
        },
    )
    assert (await lim.acquire(tokens=800)).waited == 0
    task = asyncio.create_task(lim.acquire(tokens=800))
    await clock.run_for(30)
    assert task.result().waited == pytest.approx(30.0)


async def test_discord_bucket_holds_its_routes_and_global_limit_holds_all() -> None:
    clock = FakeClock()
    lim = LocalLimiter(max_wait=0, parser=parser_for("discord"), clock=clock)
    exhausted = {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": "1.5",
        "X-RateLimit-Bucket": "abcd1234",
    }
    lim.observe(200, exhausted, key="POST /channels/1/messages")
    with pytest.raises(RateLimited) as info:
        await lim.acquire(key="POST /channels/1/messages")
    assert info.value.retry_after == pytest.approx(1.5)
    # a second route reports the same bucket: its fresher "3 left" now governs both routes
    lim.observe(200, {**exhausted, "X-RateLimit-Remaining": "3"}, key="POST /channels/2/messages")
    await lim.acquire(key="POST /channels/1/messages")
    await lim.acquire(key="POST /channels/2/messages")
    await lim.acquire(key="POST /channels/1/messages")
    with pytest.raises(RateLimited):
        await lim.acquire(key="POST /channels/2/messages")
    await lim.acquire(key="GET /users/@me")  # another bucket: unaffected
    lim.observe(
        429,
        {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global", "Retry-After": "65"},
        body=b'{"message": "You are being rate limited.", "retry_after": 64.57, "global": true}',
        key="GET /users/@me",
    )
    with pytest.raises(RateLimited) as info:
        await lim.acquire(key="GET /guilds/9")
    assert info.value.retry_after == pytest.approx(64.57)
    clock.advance(64.57)
    await lim.acquire(key="GET /guilds/9")


async def test_adaptive_off_ignores_upstream_headers() -> None:
    lim = LocalLimiter(adaptive=False, clock=FakeClock())
    lim.observe(429, {"Retry-After": "30"})
    assert (await lim.acquire()).waited == 0


async def test_unlimited_limiter_admits_everything() -> None:
    lim = UnlimitedLimiter()
    permits = [await lim.acquire(tokens=10**6) for _ in range(1000)]
    assert lim.available() == math.inf
    permits[0].correct(5)
    permits[0].release()


async def test_waiting_on_the_real_clock_costs_no_cpu() -> None:
    lim = LocalLimiter(requests_per_second=20, burst=1, max_wait=5)
    await lim.acquire()
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(lim.acquire() for _ in range(6)))  # the last waits 0.3 s
    wall = time.monotonic() - wall0
    cpu = time.process_time() - cpu0
    assert wall >= 0.28
    assert cpu < wall / 3, f"waiting burnt {cpu:.3f}s of CPU in {wall:.3f}s"
