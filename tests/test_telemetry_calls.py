"""Spans and metrics of real calls through an in-process agent (in-memory exporter and reader),
and the metrics each event turns into."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from agent.app import AgentApp
from agent.config import parse_config
from agent.events import (
    BreakerStateChanged,
    CacheLookup,
    CredentialRefreshed,
    FallbackUsed,
    LlmUsage,
    RateLimitRejected,
    RateLimitWaited,
    RetryScheduled,
    UpstreamHold,
)
from tests.conftest import SECRET, base_config
from tests.support.otlp_memory import MemoryTelemetry, point
from tests.support.upstream import Upstream

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)

Start = Callable[..., Awaitable[tuple[AgentApp, pb_grpc.IntegrationAgentStub, MemoryTelemetry]]]


@pytest.fixture
async def telemetry_agent(upstream: Upstream) -> AsyncIterator[Start]:
    running: list[tuple[AgentApp, grpc.aio.Channel]] = []

    async def start(
        telemetry: dict[str, Any] | None = None, env: dict[str, str] | None = None, **over: Any
    ) -> tuple[AgentApp, pb_grpc.IntegrationAgentStub, MemoryTelemetry]:
        config = base_config(upstream.url, **over)
        config["telemetry"] = {"audit_log": "off", **(telemetry or {})}
        memory = MemoryTelemetry(env=env or {})
        app = AgentApp(parse_config(config), telemetry=memory.factory())
        channel = grpc.aio.insecure_channel(await app.start())
        running.append((app, channel))
        return app, pb_grpc.IntegrationAgentStub(channel), memory

    yield start
    for app, channel in running:
        await channel.close()
        await app.stop()


def _by_kind(memory: MemoryTelemetry, kind: SpanKind) -> list[Any]:
    return [s for s in memory.finished() if s.kind == kind]


async def test_server_and_client_span_continue_the_callers_trace(
    telemetry_agent: Start, upstream: Upstream
) -> None:
    app, stub, memory = await telemetry_agent()
    upstream.clear()
    response = await stub.Call(
        pb.CallRequest(integration="echo", method="GET", path="/v1/items?key=AIzaSecret&page=2"),
        metadata=[("traceparent", TRACEPARENT), ("tracestate", "vendor=1")],
    )
    assert response.status == 200
    assert response.meta.trace_id == TRACE_ID
    (server,) = _by_kind(memory, SpanKind.SERVER)
    (client,) = _by_kind(memory, SpanKind.CLIENT)
    assert server.name == "kilo.agent.v1.IntegrationAgent/Call"
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert format(server.parent.span_id, "016x") == "b7ad6b7169203331"
    assert server.parent.is_remote
    assert server.context.trace_state.to_header() == "vendor=1"
    port = int(app.address.rsplit(":", 1)[1])
    attributes = dict(server.attributes)
    assert 0 <= attributes.pop("kilo.rate_limit.wait") < 0.01  # adaptive limiter: no hold yet
    assert attributes == {
        "rpc.system.name": "grpc",
        "rpc.method": "kilo.agent.v1.IntegrationAgent/Call",
        "rpc.response.status_code": "OK",
        "server.address": "127.0.0.1",
        "server.port": port,
        "kilo.integration": "echo",
        "kilo.caller": "",
        "kilo.outcome": "ok",
        "kilo.breaker.state": "CLOSED",
    }
    assert server.status.status_code == StatusCode.UNSET
    assert client.parent.span_id == server.context.span_id
    assert client.name == "GET"
    up_port = int(upstream.url.rsplit(":", 1)[1])
    assert dict(client.attributes) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": up_port,
        "url.full": f"{upstream.url}/echo/base/v1/items?key=REDACTED&page=2",
        "kilo.integration": "echo",
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }
    # No trace context leaves the agent by default.
    (seen,) = upstream.requests
    assert "traceparent" not in {k.lower() for k in seen.headers}
    assert "tracestate" not in {k.lower() for k in seen.headers}


async def test_a_limited_call_reports_its_wait(telemetry_agent: Start) -> None:
    _app, stub, memory = await telemetry_agent(rate_limit={"requests_per_minute": 6000})
    await stub.Call(pb.CallRequest(integration="echo", method="GET", path="/x"))
    (server,) = _by_kind(memory, SpanKind.SERVER)
    assert 0 <= server.attributes["kilo.rate_limit.wait"] < 0.01  # the first slot is free
    wait = point(memory.metrics(), "kilo.rate_limit.wait", kilo__integration="echo")
    assert wait.count == 1


async def test_an_unlimited_call_reports_no_wait(telemetry_agent: Start) -> None:
    _app, stub, memory = await telemetry_agent(rate_limit={"adaptive": False})
    await stub.Call(pb.CallRequest(integration="echo", method="GET", path="/x"))
    (server,) = _by_kind(memory, SpanKind.SERVER)
    assert "kilo.rate_limit.wait" not in server.attributes  # nothing limits it: no event
    assert "kilo.rate_limit.wait" not in memory.metrics()


async def test_contrib_httpx_instrumentation_makes_the_same_client_span(
    telemetry_agent: Start, upstream: Upstream
) -> None:
    env = {"KILO_OTEL_HTTPX_INSTRUMENTATION": "contrib"}
    _app, stub, memory = await telemetry_agent(env=env)
    upstream.clear()
    await stub.Call(
        pb.CallRequest(integration="echo", method="GET", path="/v1/items?key=AIzaSecret&page=2"),
        metadata=[("traceparent", TRACEPARENT)],
    )
    (server,) = _by_kind(memory, SpanKind.SERVER)
    (client,) = _by_kind(memory, SpanKind.CLIENT)
    assert client.instrumentation_scope.name == "opentelemetry.instrumentation.httpx"
    assert client.parent.span_id == server.context.span_id
    assert client.name == "GET"
    attributes = dict(client.attributes)
    assert attributes["url.full"] == f"{upstream.url}/echo/base/v1/items?key=REDACTED&page=2"
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["kilo.integration"] == "echo"
    (seen,) = upstream.requests
    assert "traceparent" not in {k.lower() for k in seen.headers}  # the gate holds here too
    assert "AIzaSecret" not in json.dumps([dict(s.attributes) for s in memory.finished()])


async def test_trace_context_is_sent_upstream_only_when_configured(
    telemetry_agent: Start, upstream: Upstream
) -> None:
    _app, stub, memory = await telemetry_agent({"propagate_trace_context": True})
    upstream.clear()
    await stub.Call(
        pb.CallRequest(integration="echo", method="GET", path="/x"),
        metadata=[("traceparent", TRACEPARENT)],
    )
    (client,) = _by_kind(memory, SpanKind.CLIENT)
    (seen,) = upstream.requests
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert headers["traceparent"] == f"00-{TRACE_ID}-{client.context.span_id:016x}-01"


async def test_a_new_trace_without_traceparent_and_errors_are_marked(
    telemetry_agent: Start,
) -> None:
    _app, stub, memory = await telemetry_agent()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Call(pb.CallRequest(integration="nope", method="GET", path="/x"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    response = await stub.Call(pb.CallRequest(integration="up", method="GET", path="/status/503"))
    assert response.status == 503
    assert len(response.meta.trace_id) == 32
    failed, ok = _by_kind(memory, SpanKind.SERVER)
    assert failed.parent is None
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["rpc.response.status_code"] == "NOT_FOUND"
    assert failed.attributes["error.type"] == "NOT_FOUND"
    assert failed.attributes["kilo.outcome"] == "UNKNOWN_INTEGRATION"
    assert format(ok.context.trace_id, "032x") == response.meta.trace_id
    clients = _by_kind(memory, SpanKind.CLIENT)  # one per attempt (503 is retried)
    assert len(clients) == response.meta.attempts
    for n, client in enumerate(clients):
        assert client.parent.span_id == ok.context.span_id
        assert client.status.status_code == StatusCode.ERROR
        assert client.attributes["error.type"] == "503"
        assert client.attributes["http.response.status_code"] == 503
        assert client.attributes.get("http.request.resend_count") == (n or None)


async def test_connection_failure_span_has_the_error_type(telemetry_agent: Start) -> None:
    _app, stub, memory = await telemetry_agent()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Call(pb.CallRequest(integration="dead", method="GET", path="/x"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    clients = _by_kind(memory, SpanKind.CLIENT)
    assert clients
    assert all(c.status.status_code == StatusCode.ERROR for c in clients)
    assert clients[0].attributes["error.type"] == "ConnectError"
    assert "http.response.status_code" not in clients[0].attributes
    if len(clients) > 1:  # retries, when the retry policy is wired in
        assert clients[1].attributes["http.request.resend_count"] == 1


async def test_stream_gets_a_server_span(telemetry_agent: Start) -> None:
    _app, stub, memory = await telemetry_agent()
    chunks = [
        c
        async for c in stub.CallStream(
            pb.CallRequest(integration="up", method="GET", path="/sse?events=2"),
            metadata=[("traceparent", TRACEPARENT)],
        )
    ]
    assert chunks[-1].meta.trace_id == TRACE_ID
    (server,) = _by_kind(memory, SpanKind.SERVER)
    assert server.name == "kilo.agent.v1.IntegrationAgent/CallStream"
    assert server.attributes["rpc.response.status_code"] == "OK"


async def test_call_metrics(telemetry_agent: Start) -> None:
    _app, stub, memory = await telemetry_agent()
    for _ in range(3):
        await stub.Call(pb.CallRequest(integration="echo", method="GET", path="/x"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Call(pb.CallRequest(integration="nope", method="GET", path="/x"))
    metrics = memory.metrics()
    ok = point(metrics, "kilo.calls", kilo__integration="echo", kilo__outcome="ok")
    assert ok.value == 3
    unknown = point(metrics, "kilo.calls", kilo__outcome="UNKNOWN_INTEGRATION")
    assert unknown.value == 1
    assert unknown.attributes["kilo.integration"] == "_OTHER"  # made-up names: no new series
    assert point(metrics, "kilo.call.duration", kilo__integration="echo").count == 3
    rpc = point(
        metrics,
        "rpc.server.call.duration",
        rpc__method="kilo.agent.v1.IntegrationAgent/Call",
        rpc__response__status_code="OK",
    )
    assert rpc.count == 3
    assert tuple(rpc.explicit_bounds) == HTTP_BUCKETS
    (attrs, http) = metrics["http.client.request.duration"][0]
    assert http.count == 3
    assert tuple(http.explicit_bounds) == HTTP_BUCKETS
    assert set(attrs) == {
        "http.request.method",
        "server.address",
        "server.port",
        "http.response.status_code",
        "network.protocol.version",
    }
    instruments = memory.instruments()
    assert instruments["http.client.request.duration"].unit == "s"
    assert instruments["rpc.server.call.duration"].unit == "s"
    for name in (
        "process.cpu.time",
        "process.cpu.utilization",
        "process.memory.usage",
        "process.memory.virtual",
        "process.unix.file_descriptor.count",
        "process.thread.count",
    ):
        assert name in metrics, name
    assert point(metrics, "process.memory.usage").value > 0
    assert point(metrics, "process.thread.count").value >= 1
    # Low cardinality: no metric attribute holds a URL or a path.
    for name, points in metrics.items():
        for attributes, _ in points:
            for value in attributes.values():
                assert "/x" not in str(value), (name, attributes)
                assert "://" not in str(value), (name, attributes)


async def test_events_become_metrics_and_span_attributes(telemetry_agent: Start) -> None:
    app, _stub, memory = await telemetry_agent()
    hub = app.hub
    hub.publish(BreakerStateChanged("echo", "CLOSED", "OPEN", failure_rate=0.6))
    hub.publish(RetryScheduled("echo", 1, 0.2, "503"))
    hub.publish(RetryScheduled("echo", 2, 0.4, "503"))
    hub.publish(RateLimitRejected("echo", "checkout", 1.5, "max_wait"))
    hub.publish(RateLimitWaited("echo", "checkout", 0.3))
    hub.publish(UpstreamHold("echo", "", 2.0, "retry_after"))
    hub.publish(FallbackUsed("echo", "up", "CIRCUIT_OPEN"))
    hub.publish(CacheLookup("echo", hit=True))
    hub.publish(CacheLookup("echo", hit=False))
    expires = datetime.now(UTC) + timedelta(minutes=10)
    hub.publish(CredentialRefreshed("echo", True, expires, trigger="scheduled"))
    hub.publish(CredentialRefreshed("echo", False, None, reason="401", trigger="expired"))
    metrics = memory.metrics()
    assert (
        point(
            metrics, "kilo.breaker.state", kilo__integration="echo", kilo__breaker__state="OPEN"
        ).value
        == 1
    )
    assert (
        point(
            metrics, "kilo.breaker.state", kilo__integration="echo", kilo__breaker__state="CLOSED"
        ).value
        == 0
    )
    assert (
        point(
            metrics, "kilo.breaker.state", kilo__integration="up", kilo__breaker__state="CLOSED"
        ).value
        == 1
    )
    transition = point(metrics, "kilo.breaker.transitions", kilo__integration="echo")
    assert transition.value == 1
    assert point(metrics, "kilo.retries", kilo__integration="echo", kilo__reason="503").value == 2
    assert (
        point(
            metrics, "kilo.rate_limit.rejections", kilo__caller="checkout", kilo__reason="max_wait"
        ).value
        == 1
    )
    wait = point(metrics, "kilo.rate_limit.wait", kilo__integration="echo", kilo__caller="checkout")
    assert (wait.count, wait.sum) == (1, 0.3)
    assert point(metrics, "kilo.rate_limit.upstream_holds", kilo__reason="retry_after").value == 1
    assert (
        point(metrics, "kilo.fallbacks", kilo__fallback="up", kilo__reason="CIRCUIT_OPEN").value
        == 1
    )
    assert point(metrics, "kilo.cache.lookups", kilo__cache__result="hit").value == 1
    assert point(metrics, "kilo.cache.lookups", kilo__cache__result="miss").value == 1
    assert point(metrics, "kilo.credential.refreshes", kilo__credential__result="ok").value == 1
    assert point(metrics, "kilo.credential.refreshes", kilo__credential__result="failed").value == 1
    ttl = point(metrics, "kilo.credential.time_to_expiry", kilo__integration="echo").value
    assert 590 < ttl <= 600


async def test_llm_usage_becomes_a_genai_span_and_metrics(telemetry_agent: Start) -> None:
    app, _stub, memory = await telemetry_agent()
    app.hub.publish(
        LlmUsage(
            integration="echo",
            caller="checkout",
            provider="openai",
            endpoint="/chat/completions",
            request_model="gpt-4o-mini",
            response_model="gpt-4o-mini-2024-07-18",
            input_tokens=9,
            output_tokens=3,
            duration=0.25,
            status=200,
            finish_reasons=("stop",),
        )
    )
    app.hub.publish(
        LlmUsage("echo", "checkout", "openai", "/models", "", "", -1, -1, 0.01, 200)
    )  # not inference: ignored
    (span,) = memory.finished()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert (span.end_time - span.start_time) == pytest.approx(0.25e9, rel=0.01)
    host, port = app.registry.get("echo").url_prefix.split("//")[1].split("/")[0].split(":")
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 9,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.response.finish_reasons": ("stop",),
        "server.address": host,
        "server.port": int(port),
        "kilo.integration": "echo",
    }
    metrics = memory.metrics()
    tokens_in = point(
        metrics, "gen_ai.client.token.usage", gen_ai__token__type="input", kilo__caller="checkout"
    )
    tokens_out = point(metrics, "gen_ai.client.token.usage", gen_ai__token__type="output")
    assert (tokens_in.sum, tokens_out.sum) == (9, 3)
    assert tuple(tokens_in.explicit_bounds)[:3] == (1, 4, 16)
    duration = point(
        metrics, "gen_ai.client.operation.duration", gen_ai__request__model="gpt-4o-mini"
    )
    assert duration.count == 1
    assert tuple(duration.explicit_bounds)[:2] == (0.01, 0.02)


async def test_nothing_exported_holds_the_secret(telemetry_agent: Start) -> None:
    _app, stub, memory = await telemetry_agent()
    await stub.Call(pb.CallRequest(integration="echo", method="GET", path="/x"))
    dumped = json.dumps([s.to_json() for s in memory.finished()])
    dumped += memory.reader.get_metrics_data().to_json()
    assert SECRET not in dumped


async def test_sdk_disabled_keeps_the_callers_trace_id(telemetry_agent: Start) -> None:
    app, stub, memory = await telemetry_agent(env={"OTEL_SDK_DISABLED": "true"})
    response = await stub.Call(
        pb.CallRequest(integration="echo", method="GET", path="/x"),
        metadata=[("traceparent", TRACEPARENT)],
    )
    assert response.meta.trace_id == TRACE_ID
    assert app.telemetry.interceptors == []
    assert memory.finished() == []


async def test_llm_call_through_the_engine_records_genai_span_and_usage(
    telemetry_agent: Start, upstream: Upstream
) -> None:
    _app, stub, memory = await telemetry_agent(base_url=f"{upstream.url}/openai/v1", llm="openai")
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    response = await stub.Call(
        pb.CallRequest(
            integration="echo", method="POST", path="/chat/completions", body=body.encode()
        )
    )
    assert response.status == 200
    genai = [s for s in memory.finished() if s.attributes.get("gen_ai.operation.name")]
    assert len(genai) == 1
    attributes = dict(genai[0].attributes)
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.usage.input_tokens"] == 9
    assert attributes["gen_ai.usage.output_tokens"] == 3
    metrics = memory.metrics()
    assert point(metrics, "gen_ai.client.token.usage", gen_ai__token__type="input").sum == 9
