"""RedisLimiter against a real redis-server: the Lua script keeps LocalLimiter's semantics.

Redis's clock is real, so these tests use the real clock with tolerances of a few milliseconds;
two runtimes on one Redis stand for two agents.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from agent.config.models import RedisConfig
from agent.errors import RateLimited, RateLimiterUnavailable
from agent.events import EventHub, RateLimitRejected, RedisStateChanged
from agent.policies import CallerLimit
from agent.redis import RedisLimiter, RedisRuntime
from tests.support import redis_server as redis_support
from tests.support.redis_server import RedisServer

# the shared fixtures (tests/support/redis_server.py)
redis_server = redis_support.redis_server
redis_url = redis_support.redis_url
private_redis = redis_support.private_redis


MakeRuntime = Callable[..., Awaitable[RedisRuntime]]


@pytest.fixture
async def make_runtime() -> AsyncIterator[MakeRuntime]:
    made: list[RedisRuntime] = []

    async def make(url: str, hub: EventHub | None = None, **cfg: Any) -> RedisRuntime:
        runtime = RedisRuntime(RedisConfig.model_validate({"url": url, **cfg}), hub)
        await runtime.start()
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.aclose()


async def settle(*runtimes: RedisRuntime) -> None:
    """Wait for the background writes (observe, correct) to land."""
    for runtime in runtimes:
        while runtime._tasks:
            await asyncio.wait(set(runtime._tasks), timeout=2)


async def raw(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url)


async def test_burst_passes_then_the_next_call_is_refused_with_the_exact_retry_after(
    redis_url: str, make_runtime: MakeRuntime
) -> None:
    runtime = await make_runtime(redis_url)
    lim = runtime.limiter("openai", requests_per_second=10, burst=3)
    for _ in range(3):
        permit = await lim.acquire()
        assert permit.waited < 0.05
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        await lim.acquire()
    elapsed = time.monotonic() - started
    # the first slot frees 0.1 s after the burst was booked, minus the time spent since
    assert 0.1 - elapsed - 0.02 <= caught.value.retry_after <= 0.1
    assert caught.value.reason == "RATE_LIMITED"
    assert "global rate limit of integration 'openai'" in caught.value.message


async def test_a_call_waits_for_its_booked_slot_once_and_reports_the_wait(
    redis_url: str, make_runtime: MakeRuntime
) -> None:
    runtime = await make_runtime(redis_url)
    lim = runtime.limiter("w", requests_per_second=5, burst=1, max_wait=1)
    await lim.acquire()
    started = time.monotonic()
    permit = await lim.acquire()
    took = time.monotonic() - started
    assert 0.17 <= permit.waited <= 0.25
    assert took == pytest.approx(permit.waited, abs=0.01)


async def test_waiters_are_admitted_first_in_first_out(
    redis_url: str, make_runtime: MakeRuntime
) -> None:
    runtime = await make_runtime(redis_url)
    lim = runtime.limiter("fifo", requests_per_second=20, burst=1, max_wait=2)
    done: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await lim.acquire()
        done.append((i, time.monotonic()))

    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(0.005)  # arrival order at Redis = launch order
    await asyncio.gather(*tasks)
    assert [i for i, _ in done] == list(range(6))
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(done)]
    assert all(0.035 <= g <= 0.07 for g in gaps), gaps


async def test_two_agents_never_admit_more_than_rate_times_time_plus_burst(
    redis_url: str, make_runtime: MakeRuntime
) -> None:
    rate, burst, span = 50.0, 10, 1.5
    limiters = [
        (await make_runtime(redis_url)).limiter("shared", requests_per_second=rate, burst=burst)
        for _ in range(2)
    ]
    admitted = 0
    started = time.monotonic()

    async def hammer(lim: RedisLimiter) -> None:
        nonlocal admitted
        while time.monotonic() - started < span:
            try:
                await lim.acquire()
                admitted += 1
            except RateLimited as exc:
                await asyncio.sleep(min(exc.retry_after, 0.01))

    await asyncio.gather(*(hammer(lim) for lim in limiters for _ in range(4)))
    elapsed = time.monotonic() - started
    assert admitted <= rate * elapsed + burst + 1
    assert admitted >= rate * span * 0.9  # and the limit is not wasted either


async def test_refused_calls_book_nothing_and_waits_are_refused_at_once(
    redis_url: str, make_runtime: MakeRuntime
) -> None:
    runtime = await make_runtime(redis_url)
    lim = runtime.limiter("r", requests_per_second=2, burst=1, max_wait=0.2)
    await lim.acquire()
    for _ in range(5):
        started = time.monotonic()
        with pytest.raises(RateLimited) as caught:
            await lim.acquire()
        assert time.monotonic() - started < 0.05  # refused now, not after waiting
        assert caught.value.retry_after == pytest.approx(0.5, abs=0.05)
    # the refusals booked nothing: the next slot is still 0.5 s after the first call
    await asyncio.sleep(0.35)
    permit = await lim.acquire()
    assert permit.waited <= 0.17


async def test_deadline_caps_the_wait(redis_url: str, make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(redis_url)
    lim = runtime.limiter("d", requests_per_second=1, burst=1, max_wait=5)
    await lim.acquire()
    hub_events: list[RateLimitRejected] = []
    runtime.hub = None
    with pytest.raises(RateLimited) as caught:
        await lim.acquire(deadline=time.monotonic() + 0.3)
    assert "before the call's deadline" in caught.value.message
    assert hub_events == []


async def test_caller_sub_limit_throttles_that_caller_only(
    redis_url: str, make_runtime: MakeRuntime
) -> None:
    runtime = await make_runtime(redis_url)
    hub = EventHub()
    rejected: list[RateLimitRejected] = []
    hub.subscribe(RateLimitRejected, rejected.append)
    lim = runtime.limiter(
        "c",
        requests_per_second=100,
        burst=10,
        caller_limits={"cron": CallerLimit(rate=2, burst=1)},
        hub=hub,
    )
    await lim.acquire(caller="cron")
    with pytest.raises(RateLimited) as caught:
        await lim.acquire(caller="cron")
    assert "for caller 'cron'" in caught.value.message
    assert rejected[-1].reason == "caller_limit"
    for _ in range(5):
        await lim.acquire(caller="web")  # others are not held back


async def test_a_throttled_caller_waits_for_its_own_slot_then_the_integrations(
    redis_url: str, make_runtime: MakeRuntime
) -> None:
    runtime = await make_runtime(redis_url)
    lim = runtime.limiter(
        "c2",
        requests_per_second=100,
        burst=5,
        max_wait=1,
        caller_limits={"cron": CallerLimit(rate=5, burst=1)},
    )
    await lim.acquire(caller="cron")
    waiting = asyncio.create_task(lim.acquire(caller="cron"))
    await asyncio.sleep(0.02)
    # while cron waits for its own slot, the integration's capacity stays free for the others
    for _ in range(4):
        permit = await lim.acquire(caller="web")
        assert permit.waited < 0.02
    permit = await waiting
    assert 0.17 <= permit.waited <= 0.26


async def test_token_budget_is_charged_and_corrected_from_reported_usage(
    redis_url: str, make_runtime: MakeRuntime
) -> None:
    runtime = await make_runtime(redis_url)
    lim = runtime.limiter("llm", tokens_per_minute=6000, max_wait=0)  # 100 tokens/s
    permit = await lim.acquire(tokens=6000)
    with pytest.raises(RateLimited) as caught:
        await lim.acquire(tokens=500)
    assert caught.value.retry_after == pytest.approx(5.0, abs=0.05)
    permit.correct(1000)  # the call used far fewer tokens than estimated: refund 5000
    await settle(runtime)
    await lim.acquire(tokens=500)


async def test_a_retry_after_learned_by_one_agent_holds_the_other(
    redis_url: str, make_runtime: MakeRuntime
) -> None:
    a = (await make_runtime(redis_url)).limiter("slack", requests_per_second=100, burst=10)
    runtime_b = await make_runtime(redis_url)
    b = runtime_b.limiter("slack", requests_per_second=100, burst=10, max_wait=0)
    a.observe(429, {"Retry-After": "2"})
    await settle(a._runtime)
    with pytest.raises(RateLimited) as caught:
        await b.acquire()
    assert caught.value.retry_after == pytest.approx(2.0, abs=0.05)
    assert b.available() >= 0  # status stays readable


async def test_an_exhausted_upstream_window_is_counted_down_by_every_agent(
    redis_url: str, make_runtime: MakeRuntime
) -> None:
    a = (await make_runtime(redis_url)).limiter("oa", max_wait=0)
    b = (await make_runtime(redis_url)).limiter("oa", max_wait=0)
    a.observe(200, {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "1s"})
    await settle(a._runtime)
    await a.acquire()
    await b.acquire()
    await a.acquire()
    with pytest.raises(RateLimited) as caught:
        await b.acquire()  # the window's 3 calls were spent by the two agents together
    assert 0.9 <= caught.value.retry_after <= 1.0


async def test_keys_expire_by_themselves(redis_url: str, make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(redis_url)
    lim = runtime.limiter(
        "ttl", requests_per_second=10, burst=2, caller_limits={"x": CallerLimit(10, 1)}
    )
    await lim.acquire(caller="x")
    client = await raw(redis_url)
    try:
        keys = sorted(k.decode() for k in await client.keys("*"))
        assert keys == ["kilo:{ttl}:c:x", "kilo:{ttl}:rl"]
        for key in keys:
            ttl = await client.pttl(key)
            assert 0 < ttl <= 1100 + 100  # just past the instant the state stops mattering
        deadline = time.monotonic() + 3
        while await client.keys("*") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await client.keys("*") == []
    finally:
        await client.aclose()


async def test_a_flushed_script_is_loaded_again(redis_url: str, make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(redis_url)
    lim = runtime.limiter("ns", requests_per_second=10, burst=5)
    await lim.acquire()
    client = await raw(redis_url)
    try:
        await client.script_flush()
    finally:
        await client.aclose()
    await lim.acquire()  # NOSCRIPT -> SCRIPT LOAD -> EVALSHA
    assert runtime.health.available


async def test_redis_down_falls_back_to_the_local_share_then_back_to_global(
    private_redis: RedisServer,
    make_runtime: MakeRuntime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = EventHub()
    changes: list[RedisStateChanged] = []
    hub.subscribe(RedisStateChanged, changes.append)
    runtime = await make_runtime(private_redis.url, hub, local_share=0.5)
    lim = runtime.limiter("g", requests_per_second=10, burst=4, max_wait=0)
    await lim.acquire()
    caplog.set_level(logging.WARNING, logger="agent.redis")
    private_redis.stop()

    # the call that meets the dead Redis goes on under the fallback: no error, no hang
    started = time.monotonic()
    admitted = 0
    for _ in range(10):
        try:
            await lim.acquire()
            admitted += 1
        except RateLimited:
            pass
    assert time.monotonic() - started < 1.0
    assert admitted == 2  # the local share: half the burst of 4
    assert not runtime.health.available
    assert [c.available for c in changes] == [False]
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once per change, not once per call
    assert "redis at redis://127.0.0.1" in warnings[0].getMessage()

    private_redis.start()
    deadline = time.monotonic() + 10
    while not runtime.health.available and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert runtime.health.available
    assert [c.available for c in changes] == [False, True]
    for _ in range(4):  # global again: the full burst, from the (empty) Redis
        await lim.acquire()
    client = await raw(private_redis.url)
    try:
        assert await client.exists("kilo:{g}:rl")
    finally:
        await client.aclose()


async def test_deny_refuses_with_rate_limiter_unavailable_while_redis_is_away(
    private_redis: RedisServer, make_runtime: MakeRuntime
) -> None:
    runtime = await make_runtime(private_redis.url, on_unavailable="deny")
    lim = runtime.limiter("d", requests_per_second=10, burst=4)
    await lim.acquire()
    private_redis.stop()
    for _ in range(3):
        with pytest.raises(RateLimiterUnavailable) as caught:
            await lim.acquire()
        assert caught.value.reason == "RATE_LIMITER_UNAVAILABLE"
        assert isinstance(caught.value, RateLimited)  # the engine moves on to fallbacks alike
        assert 0 <= caught.value.retry_after <= 5.5
        assert "redis.on_unavailable" in caught.value.message
    assert lim.available() == 0


async def test_a_hung_redis_never_holds_a_call_longer_than_its_timeout(
    private_redis: RedisServer, make_runtime: MakeRuntime
) -> None:
    runtime = await make_runtime(private_redis.url, timeout="200ms", local_share=1)
    lim = runtime.limiter("h", requests_per_second=10, burst=4)
    await lim.acquire()
    assert private_redis.proc is not None
    os.kill(private_redis.proc.pid, signal.SIGSTOP)  # alive, connected, silent
    try:
        started = time.monotonic()
        await lim.acquire()
        assert time.monotonic() - started < 0.4
        assert not runtime.health.available
        started = time.monotonic()
        await lim.acquire()  # while marked unavailable, calls do not even try
        assert time.monotonic() - started < 0.02
    finally:
        os.kill(private_redis.proc.pid, signal.SIGCONT)


async def test_redis_unreachable_at_start_serves_under_the_fallback(
    make_runtime: MakeRuntime,
) -> None:
    started = time.monotonic()
    runtime = await make_runtime("redis://127.0.0.1:9/0", connect_timeout="100ms")
    assert time.monotonic() - started < 1
    assert not runtime.health.available
    lim = runtime.limiter("s", requests_per_second=100, burst=10)
    await lim.acquire()
    assert math.isfinite(lim.available())
