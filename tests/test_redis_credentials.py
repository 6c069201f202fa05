"""Fleet-wide token refresh on a real Redis: the sealed cache, the lock, and two real agents
sharing a rotating refresh token against a real token server."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.config.models import RedisConfig
from agent.config.secret import Secret
from agent.credentials import (
    OAuth2RefreshToken,
    RefreshPolicy,
    SharedFetch,
    SharedLockBusy,
    SharedToken,
    Token,
)
from agent.redis import RedisRuntime, RedisTokenStore
from tests.support import redis_fleet
from tests.support import redis_server as redis_support
from tests.support.redis_fleet import StartAgents
from tests.support.redis_server import RedisServer
from tests.support.token_server import TokenServer, run_token_server

# the shared fixtures (tests/support/redis_server.py)
redis_server = redis_support.redis_server
redis_url = redis_support.redis_url
private_redis = redis_support.private_redis
start_agents = redis_fleet.start_agents


CLIENT_SECRET = "cs-redis-Vb7Qm2Lx9Rt4"
CACHE_KEY = "ck-test-4f9a8b7c6d5e4f3a2b1c"


@pytest.fixture(scope="module")
def token_server() -> Iterator[TokenServer]:
    with run_token_server() as server:
        server.clients["kilo"] = CLIENT_SECRET
        yield server


@pytest.fixture
def tokens(token_server: TokenServer) -> TokenServer:
    token_server.reset()
    return token_server


@pytest.fixture
async def runtimes() -> AsyncIterator[list[RedisRuntime]]:
    made: list[RedisRuntime] = []
    yield made
    for runtime in made:
        await runtime.aclose()


async def runtime_for(made: list[RedisRuntime], url: str, **cfg: Any) -> RedisRuntime:
    runtime = RedisRuntime(RedisConfig.model_validate({"url": url, **cfg}))
    await runtime.start()
    made.append(runtime)
    return runtime


async def test_tokens_are_sealed_with_aes_gcm_and_open_only_with_the_same_key(
    redis_url: str, runtimes: list[RedisRuntime]
) -> None:
    store = (await runtime_for(runtimes, redis_url, token_cache_key=CACHE_KEY)).token_store()
    assert store.holds_tokens
    token = SharedToken("Bearer at-s3cr3t-value", time.time() + 60, {"refresh_token": "rt-x"})
    await store.save("api", token)
    client = aioredis.Redis.from_url(redis_url)
    try:
        (key,) = await client.keys("*")
        blob = await client.get(key)
        assert b"s3cr3t" not in blob
        assert b"rt-x" not in blob
        assert 0 < await client.pttl(key) <= 60_000  # expires with the token
        await client.set(b"kilo:{cred:other}", blob)  # the same record under another key
    finally:
        await client.aclose()
    assert await store.load("api") == token
    assert await store.load("other") is None  # bound to its key name (associated data)
    other = RedisTokenStore(
        await runtime_for(runtimes, redis_url, token_cache_key="a-different-key-0123456789")
    )
    assert await other.load("api") is None  # another key: unreadable, so absent


async def test_without_a_key_only_the_lock_is_shared(
    redis_url: str, runtimes: list[RedisRuntime]
) -> None:
    store = (await runtime_for(runtimes, redis_url)).token_store()
    assert not store.holds_tokens
    await store.save("api", SharedToken("Bearer x", None))
    assert await store.load("api") is None
    async with store.lock("api"):
        pass


async def test_the_lock_excludes_other_replicas_and_times_out_as_busy(
    redis_url: str, runtimes: list[RedisRuntime]
) -> None:
    a = RedisTokenStore(await runtime_for(runtimes, redis_url), lock_wait=0.2)
    b = RedisTokenStore(await runtime_for(runtimes, redis_url), lock_wait=0.2)
    async with a.lock("api"):
        with pytest.raises(SharedLockBusy):
            async with b.lock("api"):
                pass
    async with b.lock("api"):  # released: free again
        pass


async def test_replicas_refresh_once_and_reuse_the_shared_token(
    redis_url: str, runtimes: list[RedisRuntime]
) -> None:
    fetches = 0

    async def fetch() -> Token[str]:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.05)
        return Token(f"Bearer t{fetches}", 60.0)

    shared = [
        SharedFetch(
            fetch,
            (await runtime_for(runtimes, redis_url, token_cache_key=CACHE_KEY)).token_store(),
            name="api",
            integration="api",
        )
        for _ in range(3)
    ]
    first = await asyncio.gather(*(s() for s in shared))
    assert fetches == 1
    assert {t.value for t in first} == {"Bearer t1"}
    # one replica's token is rejected: it refreshes; the others then adopt the new one
    assert (await shared[0]()).value == "Bearer t2"
    assert [(await s()).value for s in shared[1:]] == ["Bearer t2", "Bearer t2"]
    assert fetches == 2


async def test_redis_away_each_replica_refreshes_on_its_own(
    private_redis: RedisServer, runtimes: list[RedisRuntime]
) -> None:
    count = 0

    async def fetch() -> Token[str]:
        nonlocal count
        count += 1
        return Token(f"Bearer t{count}", 60.0)

    runtime = await runtime_for(runtimes, private_redis.url, token_cache_key=CACHE_KEY)
    shared = SharedFetch(fetch, runtime.token_store(), name="api", integration="api")
    private_redis.stop()
    started = time.monotonic()
    assert (await shared()).value == "Bearer t1"
    assert time.monotonic() - started < 1.0


async def test_a_rotated_refresh_token_travels_to_the_other_replica(
    redis_url: str, runtimes: list[RedisRuntime], tokens: TokenServer
) -> None:
    first = tokens.issue_refresh_token("kilo")

    def provider(runtime: RedisRuntime) -> OAuth2RefreshToken:
        return OAuth2RefreshToken(
            token_url=f"{tokens.url}/token",
            client_id="kilo",
            client_secret=Secret(CLIENT_SECRET),
            refresh_token=Secret(first),
            integration="api",
            policy=RefreshPolicy(),
            shared=runtime.token_store(),
        )

    a = provider(await runtime_for(runtimes, redis_url, token_cache_key=CACHE_KEY))
    b = provider(await runtime_for(runtimes, redis_url, token_cache_key=CACHE_KEY))
    try:
        ha: dict[str, str] = {}
        hb: dict[str, str] = {}
        await a.apply("GET", "x", ha, b"")
        await b.apply("GET", "x", hb, b"")
        assert ha == hb  # b reused a's token
        assert len(tokens.requests_for("token")) == 1
        a.invalidate()  # a's token is rejected: a refreshes with the rotated refresh token
        await a.apply("GET", "x", ha, b"")
        b.invalidate()  # b's copy of the old token is rejected: b adopts a's new one
        await b.apply("GET", "x", hb, b"")
        assert ha == hb
        assert len(tokens.requests_for("token")) == 2
        # b never used the configured (already rotated) refresh token: no reuse, no revocation
        used = [r.form["refresh_token"] for r in tokens.requests_for("token")]
        assert len(set(used)) == len(used)
        assert b._refresh_token == a._refresh_token != first
    finally:
        await a.aclose()
        await b.aclose()


def refresh_config(tokens: TokenServer, redis: str, refresh_token: str) -> dict[str, Any]:
    auth = {
        "type": "oauth2_refresh_token",
        "token_url": f"{tokens.url}/token",
        "client_id": "kilo",
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
    }
    return {
        "listen": {"grpc": "127.0.0.1:0"},
        "server": {"grace_period": "2s"},
        "telemetry": {"audit_log": "off"},
        "redis": {"url": redis, "token_cache_key": CACHE_KEY},
        "integrations": {
            "api": {"base_url": f"{tokens.url}/api", "auth": auth, "retry": {"max_attempts": 1}}
        },
    }


async def test_two_agents_share_one_rotating_refresh_token(
    redis_url: str, tokens: TokenServer, start_agents: StartAgents
) -> None:
    tokens.lifetime = 3.0  # refreshed about every 2.5 s
    config = refresh_config(tokens, redis_url, tokens.issue_refresh_token("kilo"))
    agents = await start_agents(config, 2)
    request = pb.CallRequest(integration="api", method="GET", path="/items")
    statuses: list[int] = []
    started = time.monotonic()
    while time.monotonic() - started < 8.0:
        for _process, stub in agents:
            try:
                statuses.append((await stub.Call(request, timeout=5)).status)
            except grpc.aio.AioRpcError as exc:
                statuses.append(-1)
                print(exc.details())
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    assert set(statuses) == {200}, statuses  # every call succeeded (no revoked family)
    refreshes = tokens.requests_for("token")
    used = [r.form["refresh_token"] for r in refreshes]
    assert len(set(used)) == len(used)  # no refresh token was ever used twice
    # one refresh per expiry for the fleet (start + one per ~2.4-2.7 s), not one per agent
    per_expiry = 1 + elapsed / (0.8 * tokens.lifetime - 0.3)
    assert len(refreshes) <= per_expiry + 1, (len(refreshes), per_expiry)
    gaps = [b.at - a.at for a, b in itertools.pairwise(refreshes)]
    assert all(g > 0.5 * tokens.lifetime for g in gaps), gaps
    print(f"2 agents, {len(statuses)} calls in {elapsed:.1f}s: {len(refreshes)} refreshes")
