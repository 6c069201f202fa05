"""The single-flight refreshing cache on its own: a fake fetch, real time, short lifetimes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from agent.credentials import RefreshFailed, RefreshingCache, RefreshPolicy, Token
from agent.errors import CredentialsUnavailable
from agent.events import CredentialRefreshed, CredentialStateChanged, EventHub

FAST = RefreshPolicy(
    margin=60,
    margin_ratio=0.3,
    jitter=0.0,
    skew=0.0,
    backoff_base=0.2,
    backoff_cap=0.4,
    reject_cooldown=5.0,
)


class Fetcher:
    """A scripted fetch: hands out tok-1, tok-2, ...; can be gated or made to fail."""

    def __init__(self, lifetime: float | None = 60.0) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.gate: asyncio.Event | None = None
        self.fail: str = ""

    async def __call__(self) -> Token[str]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RefreshFailed(self.fail)
        return Token(f"tok-{self.calls}", lifetime=self.lifetime)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


def make(
    fetch: Fetcher, hub: EventHub | None = None, policy: RefreshPolicy = FAST
) -> RefreshingCache[str]:
    return RefreshingCache(fetch, integration="svc", hub=hub, policy=policy)


async def in_task(fn: Callable[[], Awaitable[object]]) -> object:
    """Run in its own task (its own context), as each gRPC call is."""
    return await asyncio.create_task(fn())  # type: ignore[arg-type]


async def test_many_waiters_share_one_fetch() -> None:
    fetch = Fetcher()
    fetch.gate = asyncio.Event()
    cache = make(fetch)
    await cache.start()
    waiters = [asyncio.create_task(cache.get()) for _ in range(100)]
    await asyncio.sleep(0.05)
    assert cache.state() == "refreshing"
    fetch.gate.set()
    assert set(await asyncio.gather(*waiters)) == {"tok-1"}
    assert fetch.calls == 1
    assert cache.state() == "valid"
    assert cache.expires_at() is not None
    await cache.aclose()


async def test_old_token_serves_while_the_refresh_runs() -> None:
    fetch = Fetcher(lifetime=1.0)  # refresh at 70 % of the lifetime
    cache = make(fetch)
    await cache.start()
    assert await cache.get() == "tok-1"
    fetch.gate = asyncio.Event()
    await until(lambda: fetch.calls == 2)  # the scheduled refresh started, and is held
    assert cache.state() == "refreshing"
    # No waiting for the held refresh (it would never finish): the current token is valid.
    assert await asyncio.wait_for(cache.get(), 1.0) == "tok-1"
    fetch.gate.set()
    await until(lambda: cache.state() == "valid")
    assert await cache.get() == "tok-2"
    await cache.aclose()


async def test_failure_is_reported_once_retried_with_backoff_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = EventHub()
    refreshed: list[CredentialRefreshed] = []
    changes: list[CredentialStateChanged] = []
    hub.subscribe(CredentialRefreshed, refreshed.append)
    hub.subscribe(CredentialStateChanged, changes.append)
    fetch = Fetcher()
    fetch.fail = "token endpoint https://idp/token answered 401 invalid_client"
    cache = make(fetch, hub)
    caplog.set_level(logging.INFO, logger="agent.credentials")
    await cache.start()
    with pytest.raises(CredentialsUnavailable) as info:
        await cache.get()
    assert "invalid_client" in str(info.value)
    assert "'svc'" in str(info.value)
    assert info.value.integration == "svc"
    calls = fetch.calls
    for _ in range(50):  # while backing off, calls fail fast and do not reach the endpoint
        with pytest.raises(CredentialsUnavailable):
            await cache.get()
    assert fetch.calls == calls
    assert cache.state().startswith("failed: token endpoint")
    await until(lambda: fetch.calls >= calls + 2)  # the background task retries on its own
    fetch.fail = ""
    await until(lambda: cache.state() == "valid")
    assert (await cache.get()).startswith("tok-")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]  # unavailable, recovered
    assert all("'svc'" in r.getMessage() for r in warnings)
    assert [(c.old, c.new) for c in changes] == [("pending", "failed"), ("failed", "valid")]
    assert [e.ok for e in refreshed][-1] is True
    assert all(not e.ok for e in refreshed[:-1])
    assert len(refreshed) >= 3
    await cache.aclose()


async def test_refresh_failing_while_token_valid_is_degraded_not_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fetch = Fetcher(lifetime=1.5)
    cache = make(fetch)
    await cache.start()
    assert await cache.get() == "tok-1"
    fetch.fail = "token endpoint down"
    caplog.set_level(logging.WARNING, logger="agent.credentials")
    await until(lambda: fetch.calls >= 3)  # scheduled refresh failed and was retried
    assert await cache.get() == "tok-1"  # still valid: calls keep working
    assert cache.state() in ("valid", "refreshing")
    degraded = [r for r in caplog.records if "still valid" in r.getMessage()]
    assert len(degraded) == 1
    await until(lambda: cache.state().startswith("failed"), timeout=3)  # then it expires
    with pytest.raises(CredentialsUnavailable):
        await cache.get()
    await cache.aclose()


async def test_a_burst_of_rejections_costs_one_refresh() -> None:
    fetch = Fetcher()
    cache = make(fetch)
    await cache.start()

    async def rejected_call() -> str:
        await cache.get()  # applied generation 1
        await asyncio.sleep(0.01)
        cache.invalidate()  # the upstream said 401
        return await cache.get()

    results = await asyncio.gather(*(in_task(rejected_call) for _ in range(20)))
    assert set(results) == {"tok-2"}
    assert fetch.calls == 2


async def test_a_late_rejection_of_an_old_token_keeps_the_new_one() -> None:
    fetch = Fetcher()
    cache = make(fetch)
    await cache.start()
    applied = asyncio.Event()
    proceed = asyncio.Event()

    async def slow_call() -> None:
        await cache.get()  # tok-1
        applied.set()
        await proceed.wait()
        cache.invalidate()  # its 401 arrives after tok-2 was fetched

    async def fast_call() -> str:
        await applied.wait()
        await cache.get()
        cache.invalidate()
        return await cache.get()

    slow = asyncio.create_task(slow_call())
    assert await in_task(fast_call) == "tok-2"
    proceed.set()
    await slow
    assert await cache.get() == "tok-2"
    assert fetch.calls == 2
    await cache.aclose()


async def test_a_fresh_token_rejected_again_is_not_refetched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fetch = Fetcher()
    cache = make(fetch)
    await cache.start()
    caplog.set_level(logging.WARNING, logger="agent.credentials")

    async def call_rejected() -> str:
        await cache.get()
        cache.invalidate()
        return await cache.get()

    assert await in_task(call_rejected) == "tok-2"  # first 401: refresh
    for _ in range(10):  # the new token is refused too: the credential is wrong, not stale
        assert await in_task(call_rejected) == "tok-2"
    assert fetch.calls == 2
    assert len([r for r in caplog.records if "rejected (401) again" in r.getMessage()]) == 1
    await cache.aclose()


async def test_get_works_without_start_and_aclose_is_clean() -> None:
    fetch = Fetcher(lifetime=None)
    cache = make(fetch)
    assert await cache.get() == "tok-1"
    assert cache.expires_at() is None
    assert "tok-1" not in repr(cache)
    await cache.aclose()
    await cache.aclose()


async def test_unexpected_errors_are_reported_by_type_only() -> None:
    secret = "s3cr3t-value-in-an-exception"

    async def broken() -> Token[str]:
        raise RuntimeError(secret)

    cache: RefreshingCache[str] = RefreshingCache(broken, integration="svc", policy=FAST)
    with pytest.raises(CredentialsUnavailable) as info:
        await cache.get()
    assert "RuntimeError" in str(info.value)
    assert secret not in str(info.value)
    assert secret not in cache.state()
    await cache.aclose()
