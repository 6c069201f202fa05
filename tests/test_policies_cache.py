"""Response cache (TTL, LRU by bytes, Cache-Control) and single-flight coalescing."""

from __future__ import annotations

import asyncio

import pytest

from agent.policies import FakeClock, ResponseCache, SingleFlight, cache_key, request_allows_cache

JSON = {"content-type": "application/json"}


def make(clock: FakeClock, ttl: float = 60, max_bytes: int = 1 << 20) -> ResponseCache:
    return ResponseCache(ttl=ttl, max_bytes=max_bytes, clock=clock)


def test_get_head_cached_until_ttl() -> None:
    clock = FakeClock()
    cache = make(clock, ttl=60)
    key = cache_key("get", "/models?limit=5")
    assert cache.put(key, 200, JSON, b"[1]") is not None
    clock.advance(59.9)
    hit = cache.get(key)
    assert hit is not None
    assert (hit.status, hit.body) == (200, b"[1]")
    assert dict(hit.headers) == JSON
    assert hit.age(clock.now()) == pytest.approx(59.9)
    clock.advance(0.1)
    assert cache.get(key) is None
    assert len(cache) == 0
    assert cache.size_bytes == 0


def test_only_safe_methods_and_cacheable_statuses_are_stored() -> None:
    cache = make(FakeClock())
    assert cache.put(cache_key("POST", "/chat"), 200, JSON, b"x") is None
    assert cache.put(cache_key("GET", "/x"), 500, JSON, b"x") is None
    assert cache.put(cache_key("GET", "/x"), 429, JSON, b"x") is None
    assert cache.put(cache_key("HEAD", "/x"), 200, JSON, b"") is not None
    assert cache.put(cache_key("GET", "/gone"), 404, JSON, b"") is not None
    assert ResponseCache(ttl=0, clock=FakeClock()).put(cache_key("GET", "/"), 200, {}, b"") is None


@pytest.mark.parametrize(
    "headers",
    [
        {"cache-control": "no-store"},
        {"cache-control": "private, max-age=600"},
        {"cache-control": "no-cache"},
        {"cache-control": "max-age=0"},
        {"set-cookie": "session=abc"},
        {"vary": "*"},
        {"cache-control": "max-age=30", "age": "45"},
    ],
)
def test_upstream_forbids_or_exhausts_freshness(headers: dict[str, str]) -> None:
    assert make(FakeClock()).put(cache_key("GET", "/x"), 200, headers, b"x") is None


def test_max_age_s_maxage_and_age_cap_the_ttl() -> None:
    clock = FakeClock()
    cache = make(clock, ttl=60)
    e = cache.put(cache_key("GET", "/a"), 200, {"cache-control": "public, max-age=10"}, b"")
    assert e is not None
    assert e.expires_at - clock.now() == 10
    e = cache.put(cache_key("GET", "/b"), 200, {"cache-control": "max-age=3600"}, b"")
    assert e is not None
    assert e.expires_at - clock.now() == 60
    e = cache.put(cache_key("GET", "/c"), 200, {"cache-control": "max-age=5, s-maxage=20"}, b"")
    assert e is not None
    assert e.expires_at - clock.now() == 20
    e = cache.put(cache_key("GET", "/d"), 200, {"cache-control": "max-age=30", "age": "10"}, b"")
    assert e is not None
    assert e.expires_at - clock.now() == 20


def test_keys_vary_by_method_path_query_and_chosen_headers_only() -> None:
    cache = make(FakeClock())
    cache.put(cache_key("GET", "/m?a=1", ("application/json",)), 200, {}, b"json")
    assert cache.get(cache_key("GET", "/m?a=1", ("application/json",))) is not None
    assert cache.get(cache_key("GET", "/m?a=2", ("application/json",))) is None
    assert cache.get(cache_key("GET", "/m?a=1", ("text/html",))) is None
    assert cache.get(cache_key("HEAD", "/m?a=1", ("application/json",))) is None


def test_lru_eviction_is_bounded_in_bytes_and_respects_recency() -> None:
    cache = make(FakeClock(), max_bytes=3000)
    body = b"x" * 700  # ~ 700 + 256 overhead per entry: three fit
    for name in ("a", "b", "c"):
        cache.put(cache_key("GET", f"/{name}"), 200, {}, body)
    assert len(cache) == 3
    assert cache.get(cache_key("GET", "/a")) is not None  # a is now the most recent
    cache.put(cache_key("GET", "/d"), 200, {}, body)
    assert cache.get(cache_key("GET", "/b")) is None  # least recently used went first
    assert all(cache.get(cache_key("GET", f"/{n}")) is not None for n in "acd")
    assert cache.size_bytes <= 3000
    assert cache.put(cache_key("GET", "/huge"), 200, {}, b"x" * 5000) is None  # never fits
    assert len(cache) == 3


def test_replacing_an_entry_does_not_leak_bytes() -> None:
    cache = make(FakeClock())
    for _ in range(10):
        cache.put(cache_key("GET", "/same"), 200, {}, b"x" * 100)
    entry = cache.get(cache_key("GET", "/same"))
    assert entry is not None
    assert len(cache) == 1
    assert cache.size_bytes == entry.size


def test_request_cache_control() -> None:
    assert request_allows_cache({})
    assert request_allows_cache({"cache-control": "max-age=60"})
    assert not request_allows_cache({"cache-control": "no-cache"})
    assert not request_allows_cache({"cache-control": "no-store"})
    assert not request_allows_cache({"pragma": "no-cache"})


async def test_single_flight_sends_one_request_for_concurrent_identical_gets() -> None:
    sf: SingleFlight[bytes] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def fetch() -> bytes:
        nonlocal calls
        calls += 1
        await gate.wait()
        return b"answer"

    tasks = [asyncio.create_task(sf.do(("GET", "/m"), fetch)) for _ in range(10)]
    await asyncio.sleep(0)
    assert sf.in_flight(("GET", "/m"))
    gate.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert [r for r, _ in results] == [b"answer"] * 10
    assert [shared for _, shared in results].count(False) == 1
    assert not sf.in_flight(("GET", "/m"))
    await sf.do(("GET", "/m"), fetch)  # finished flights are not reused
    assert calls == 2


async def test_single_flight_shares_the_exception() -> None:
    sf: SingleFlight[bytes] = SingleFlight()
    gate = asyncio.Event()

    async def fail() -> bytes:
        await gate.wait()
        raise ConnectionResetError("upstream reset")

    tasks = [asyncio.create_task(sf.do("k", fail)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ConnectionResetError) for r in results)


async def test_a_lone_failing_leader_leaves_no_unretrieved_future() -> None:
    sf: SingleFlight[bytes] = SingleFlight()

    async def fail() -> bytes:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await sf.do("k", fail)


async def test_follower_cancellation_leaves_the_leader_running() -> None:
    sf: SingleFlight[str] = SingleFlight()
    gate = asyncio.Event()

    async def fetch() -> str:
        await gate.wait()
        return "ok"

    leader = asyncio.create_task(sf.do("k", fetch))
    await asyncio.sleep(0)
    follower = asyncio.create_task(sf.do("k", fetch))
    await asyncio.sleep(0)
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    gate.set()
    assert await leader == ("ok", False)


async def test_leader_cancellation_hands_the_request_to_a_follower() -> None:
    sf: SingleFlight[str] = SingleFlight()
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01 if calls == 1 else 0)
        return f"call {calls}"

    leader = asyncio.create_task(sf.do("k", fetch))
    await asyncio.sleep(0)
    follower = asyncio.create_task(sf.do("k", fetch))
    await asyncio.sleep(0)
    leader.cancel()
    assert await follower == ("call 2", False)
    assert leader.cancelled()
