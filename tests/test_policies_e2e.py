"""Policies end to end: a real agent process, real gRPC, a fault-injecting loopback upstream."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from tests.conftest import base_config
from tests.support.grpc_errors import details_of


def req(integration: str, path: str, method: str = "GET", **kw) -> pb.CallRequest:  # type: ignore[no-untyped-def]
    return pb.CallRequest(integration=integration, method=method, path=path, **kw)


def uid() -> str:
    return uuid.uuid4().hex[:8]


def config_with(upstream_url: str, **integrations) -> dict:  # type: ignore[no-untyped-def]
    config = base_config(upstream_url)
    for name, extra in integrations.items():
        config["integrations"][name] = {"base_url": upstream_url, **extra}
    return config


FAST_RETRY = {"max_attempts": 3, "initial_backoff": "10ms", "max_backoff": "50ms", "budget": 1.0}


def hits(upstream, prefix: str) -> list:  # type: ignore[no-untyped-def]
    return [r for r in upstream.requests if r.path_qs.startswith(prefix)]


async def test_retry_after_503_succeeds(start_agent_process, upstream) -> None:
    _app, stub, _ = await start_agent_process(config_with(upstream.url, r={"retry": FAST_RETRY}))
    key = uid()
    response = await stub.Call(req("r", f"/flaky?fail=2&id={key}"))
    assert response.status == 200
    assert response.meta.attempts == 3
    assert len(hits(upstream, f"/flaky?fail=2&id={key}")) == 3


async def test_retries_spent_return_the_upstream_answer(start_agent_process, upstream) -> None:
    _app, stub, _ = await start_agent_process(config_with(upstream.url, r={"retry": FAST_RETRY}))
    response = await stub.Call(req("r", f"/flaky?fail=9&id={uid()}"))
    assert response.status == 503
    assert response.meta.attempts == 3


async def test_post_is_retried_only_with_an_idempotency_key(start_agent_process, upstream) -> None:
    _app, stub, _ = await start_agent_process(config_with(upstream.url, r={"retry": FAST_RETRY}))
    plain = await stub.Call(req("r", f"/flaky?fail=1&id={uid()}", method="POST"))
    assert plain.status == 503
    assert plain.meta.attempts == 1
    key = uid()
    keyed = await stub.Call(
        req("r", f"/flaky?fail=1&id={key}", method="POST", idempotency_key="k1")
    )
    assert keyed.status == 200
    assert keyed.meta.attempts == 2
    assert all(
        {k.lower(): v for k, v in r.headers.items()}["idempotency-key"] == "k1"
        for r in hits(upstream, f"/flaky?fail=1&id={key}")
    )


async def test_non_retryable_status_is_not_retried(start_agent_process, upstream) -> None:
    _app, stub, _ = await start_agent_process(config_with(upstream.url, r={"retry": FAST_RETRY}))
    response = await stub.Call(req("r", f"/flaky?fail=1&status=500&id={uid()}"))
    assert response.status == 500
    assert response.meta.attempts == 1


async def test_retry_after_header_is_honoured(start_agent_process, upstream) -> None:
    retry = {**FAST_RETRY, "max_attempts": 2}
    _app, stub, _ = await start_agent_process(
        config_with(upstream.url, r={"retry": retry, "rate_limit": {"adaptive": False}})
    )
    key = uid()
    response = await stub.Call(req("r", f"/flaky?fail=1&status=429&retry_after=1&id={key}"))
    assert response.status == 200
    first, second = hits(upstream, f"/flaky?fail=1&status=429&retry_after=1&id={key}")
    assert second.at - first.at >= 0.95


async def test_retry_after_beyond_the_deadline_is_not_waited_for(
    start_agent_process, upstream
) -> None:
    retry = {**FAST_RETRY, "max_attempts": 2}
    _app, stub, _ = await start_agent_process(
        config_with(upstream.url, r={"retry": retry, "rate_limit": {"adaptive": False}})
    )
    started = time.monotonic()
    response = await stub.Call(
        req("r", f"/flaky?fail=1&status=429&retry_after=30&id={uid()}"), timeout=5
    )
    assert response.status == 429
    assert response.meta.attempts == 1
    assert time.monotonic() - started < 3


async def test_connection_reset_is_retried_then_unreachable(start_agent_process, upstream) -> None:
    _app, stub, _ = await start_agent_process(config_with(upstream.url, r={"retry": FAST_RETRY}))
    upstream.clear()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Call(req("r", "/reset"))
    details = details_of(caught.value)
    assert details.code == grpc.StatusCode.UNAVAILABLE
    assert details.reason == "UPSTREAM_UNREACHABLE"
    assert len(hits(upstream, "/reset")) == 3


async def test_breaker_opens_fails_fast_and_closes_again(start_agent_process, upstream) -> None:
    breaker = {"minimum_calls": 4, "failure_rate": 0.5, "open_for": "1s", "half_open_calls": 1}
    _app, stub, _ = await start_agent_process(
        config_with(upstream.url, b={"circuit_breaker": breaker, "retry": {"max_attempts": 1}})
    )
    for _ in range(4):
        assert (await stub.Call(req("b", "/status/500"))).status == 500
    listed = await stub.ListIntegrations(pb.ListIntegrationsRequest())
    assert {i.name: i.circuit_state for i in listed.integrations}["b"] == pb.OPEN
    upstream.clear()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Call(req("b", "/status/200"))
    details = details_of(caught.value)
    assert details.code == grpc.StatusCode.UNAVAILABLE
    assert details.reason == "CIRCUIT_OPEN"
    assert 0 < details.retry_delay <= 1.0
    assert upstream.requests == []  # an open breaker never touches the network
    await asyncio.sleep(details.retry_delay)  # the breaker's own promise: try again then
    assert (await stub.Call(req("b", "/status/200"))).status == 200  # the half-open trial
    listed = await stub.ListIntegrations(pb.ListIntegrationsRequest())
    assert {i.name: i.circuit_state for i in listed.integrations}["b"] == pb.CLOSED


async def test_rate_limit_rejects_with_retry_info_when_it_cannot_wait(
    start_agent_process, upstream
) -> None:
    limit = {"requests_per_second": 2, "burst": 2, "max_wait": "0s", "adaptive": False}
    _app, stub, _ = await start_agent_process(config_with(upstream.url, l={"rate_limit": limit}))
    for _ in range(2):
        assert (await stub.Call(req("l", "/status/200"))).status == 200
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Call(req("l", "/status/200"))
    details = details_of(caught.value)
    assert details.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.reason == "RATE_LIMITED"
    assert 0 < details.retry_delay <= 0.5
    listed = await stub.ListIntegrations(pb.ListIntegrationsRequest())
    assert {i.name: i.rate_limit_available for i in listed.integrations}["l"] < 1


async def test_rate_limit_queues_up_to_max_wait(start_agent_process, upstream) -> None:
    limit = {"requests_per_second": 5, "burst": 1, "max_wait": "2s", "adaptive": False}
    _app, stub, _ = await start_agent_process(config_with(upstream.url, l={"rate_limit": limit}))
    answers = await asyncio.gather(*(stub.Call(req("l", "/status/200")) for _ in range(4)))
    assert all(a.status == 200 for a in answers)
    waits = sorted(a.meta.rate_limit_wait.ToTimedelta().total_seconds() for a in answers)
    assert waits[0] < 0.05
    assert waits[-1] == pytest.approx(0.6, abs=0.1)  # the fourth call starts 3 x 200 ms later


async def test_adaptive_limit_holds_calls_after_upstream_429(start_agent_process, upstream) -> None:
    limit = {"max_wait": "0s", "adaptive": True}
    _app, stub, _ = await start_agent_process(
        config_with(upstream.url, a={"rate_limit": limit, "retry": {"max_attempts": 1}})
    )
    response = await stub.Call(req("a", f"/flaky?fail=1&status=429&retry_after=5&id={uid()}"))
    assert response.status == 429
    upstream.clear()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Call(req("a", "/status/200"))
    details = details_of(caught.value)
    assert details.reason == "RATE_LIMITED"
    assert 3 < details.retry_delay <= 5
    assert upstream.requests == []  # held by the agent, not spent on another 429


async def test_fallback_answers_when_the_target_is_down(start_agent_process, upstream) -> None:
    config = config_with(
        upstream.url,
        backup={"retry": {"max_attempts": 1}},
        primary={
            "base_url": "http://127.0.0.1:9",
            "retry": {"max_attempts": 1},
            "fallback": ["backup"],
        },
    )
    _app, stub, _ = await start_agent_process(config)
    response = await stub.Call(req("primary", "/status/200"))
    assert response.status == 200
    assert response.meta.integration == "backup"
    assert response.meta.attempts == 2


async def test_fallback_after_retryable_failures(start_agent_process, upstream) -> None:
    config = config_with(
        upstream.url,
        backup={"base_url": f"{upstream.url}/echo", "retry": {"max_attempts": 1}},
        primary={"retry": FAST_RETRY, "fallback": ["backup"]},
    )
    _app, stub, _ = await start_agent_process(config)
    response = await stub.Call(req("primary", f"/flaky?fail=9&id={uid()}"))
    assert response.status == 200
    assert response.meta.integration == "backup"
    assert response.meta.attempts == 4


async def test_cache_serves_repeat_gets_and_coalesces_concurrent_ones(
    start_agent_process, upstream
) -> None:
    _app, stub, _ = await start_agent_process(
        config_with(upstream.url, c={"cache": {"ttl": "30s"}})
    )
    key = uid()
    first = await stub.Call(req("c", f"/echo/cached?{key}"))
    again = await stub.Call(req("c", f"/echo/cached?{key}"))
    assert first.meta.cache_hit is False
    assert again.meta.cache_hit is True
    assert again.body == first.body
    assert len(hits(upstream, f"/echo/cached?{key}")) == 1
    path = f"/slow?delay=0.3&k={uid()}"
    answers = await asyncio.gather(*(stub.Call(req("c", path)) for _ in range(10)))
    assert all(a.status == 200 for a in answers)
    assert len(hits(upstream, path)) == 1
    assert sum(a.meta.cache_hit for a in answers) == 9
    post = await stub.Call(req("c", f"/echo/cached?{key}", method="POST"))
    assert post.meta.cache_hit is False  # only GET and HEAD are cached


async def test_token_budget_charges_estimate_and_corrects_from_usage(
    start_agent_process, upstream
) -> None:
    limit = {"tokens_per_minute": 1000, "max_wait": "0s", "adaptive": False}
    _app, stub, _ = await start_agent_process(
        config_with(upstream.url, llm={"rate_limit": limit, "llm": "openai"})
    )
    body = b'{"model": "gpt-4o-mini", "max_tokens": 900, "messages": []}'
    path = "/openai/v1/chat/completions"
    for _ in range(3):  # each charge of ~915 is corrected to the 12 tokens the answer reports
        answer = await stub.Call(req("llm", path, method="POST", body=body))
        assert answer.status == 200
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # an explicit cost over the budget
        await stub.Call(req("llm", path, method="POST", body=body, tokens=1001))
    assert details_of(caught.value).reason == "RATE_LIMITED"


async def test_max_concurrent_bulkhead(start_agent_process, upstream) -> None:
    limit = {"max_concurrent": 2, "max_wait": "0s", "adaptive": False}
    _app, stub, _ = await start_agent_process(config_with(upstream.url, bh={"rate_limit": limit}))
    slow = [asyncio.ensure_future(stub.Call(req("bh", f"/slow?delay=0.5&b={i}"))) for i in range(2)]
    deadline = time.monotonic() + 5
    while len(hits(upstream, "/slow?delay=0.5&b=")) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Call(req("bh", "/status/200"))
    assert details_of(caught.value).reason == "RATE_LIMITED"
    assert [a.status for a in await asyncio.gather(*slow)] == [200, 200]
    assert (await stub.Call(req("bh", "/status/200"))).status == 200


async def test_per_caller_sub_limit_inside_the_integration_limit(
    start_agent_process, upstream
) -> None:  # type: ignore[no-untyped-def]
    config = config_with(
        upstream.url,
        shared={
            "rate_limit": {
                "requests_per_second": 50,
                "burst": 50,
                "max_wait": "0s",
                "adaptive": False,
                "per_caller": {"batch": {"requests_per_second": 1, "burst": 2}},
            }
        },
    )
    config["callers"] = [
        {"name": "batch", "token": "tok-batch-123456", "allow": ["*"]},
        {"name": "web", "token": "tok-web-abcdef", "allow": ["*"]},
    ]
    _process, stub, _ = await start_agent_process(config)
    batch = [("authorization", "Bearer tok-batch-123456")]
    web = [("authorization", "Bearer tok-web-abcdef")]
    for _ in range(2):
        assert (await stub.Call(req("shared", "/status/200"), metadata=batch)).status == 200
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Call(req("shared", "/status/200"), metadata=batch)
    assert details_of(caught.value).reason == "RATE_LIMITED"
    # The other caller is not held back by the batch job's own limit.
    answers = await asyncio.gather(
        *(stub.Call(req("shared", "/status/200"), metadata=web) for _ in range(10))
    )
    assert {a.status for a in answers} == {200}


async def test_slow_calls_open_the_breaker(start_agent_process, upstream) -> None:  # type: ignore[no-untyped-def]
    breaker = {
        "minimum_calls": 3,
        "failure_rate": 1.0,
        "slow_call_duration": "100ms",
        "open_for": "30s",
    }
    _process, stub, _ = await start_agent_process(
        config_with(upstream.url, s={"circuit_breaker": breaker, "retry": {"max_attempts": 1}})
    )
    for _ in range(3):  # answered 200, but slowly
        assert (await stub.Call(req("s", f"/slow?delay=0.2&s={uid()}"))).status == 200
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Call(req("s", "/status/200"))
    assert details_of(caught.value).reason == "CIRCUIT_OPEN"


async def test_fallback_when_breaker_open_or_limit_cannot_be_met(
    start_agent_process, upstream
) -> None:  # type: ignore[no-untyped-def]
    config = config_with(
        upstream.url,
        backup={"base_url": f"{upstream.url}/echo"},
        limited={
            "rate_limit": {"requests_per_second": 1, "burst": 1, "max_wait": "0s"},
            "fallback": ["backup"],
        },
        fragile={
            "circuit_breaker": {"minimum_calls": 2, "failure_rate": 0.5, "open_for": "30s"},
            "retry": {"max_attempts": 1},
            "fallback": ["backup"],
        },
    )
    _process, stub, _ = await start_agent_process(config)
    first = await stub.Call(req("limited", "/status/200"))
    assert first.meta.integration == "limited"
    second = await stub.Call(req("limited", "/status/200"))  # the limit can't be met: fallback
    assert second.status == 200
    assert second.meta.integration == "backup"
    for _ in range(2):
        assert (await stub.Call(req("fragile", "/status/500"))).status == 500
    upstream.clear()
    answered = await stub.Call(req("fragile", "/status/500"))  # open breaker: straight to backup
    assert answered.status == 200
    assert answered.meta.integration == "backup"
    assert [r.path_qs for r in upstream.requests] == ["/echo/status/500"]
