"""A real ``kilo-agent serve`` process exporting OTLP (gRPC, and HTTP/protobuf) to a real
receiver started here."""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from tests.conftest import SECRET, base_config
from tests.support.otlp_receiver import OtlpReceiver, attributes
from tests.support.process import AgentProcess, start_agent
from tests.support.upstream import Upstream

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver().start()
    yield running
    running.stop()


def _agent(tmp_path: Path, upstream: Upstream, endpoint: str, **env: str) -> AgentProcess:
    config = base_config(upstream.url)
    config["telemetry"] = {"audit_log": "stdout"}
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(config))
    return start_agent(
        path,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "OTEL_SERVICE_NAME": "kilo-agent-e2e",
            **env,
        },
    )


def _call(address: str, path: str = "/x", **kw: Any) -> pb.CallResponse:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.IntegrationAgentStub(channel)
        return stub.Call(  # type: ignore[no-any-return]
            pb.CallRequest(integration="echo", method="GET", path=path), timeout=10, **kw
        )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_spans_share_the_callers_trace_and_metrics_arrive_without_secrets(
    tmp_path: Path, upstream: Upstream, protocol: str
) -> None:
    receiver = OtlpReceiver(protocol=protocol).start()
    agent = _agent(tmp_path, upstream, receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    try:
        response = _call(
            agent.address, "/v1/items?token=abc", metadata=[("traceparent", TRACEPARENT)]
        )
        assert response.status == 200
        assert response.meta.trace_id == TRACE_ID

        def ours(r: OtlpReceiver) -> list[Any]:
            return [s for _, s in r.spans() if s.trace_id.hex() == TRACE_ID]

        assert receiver.wait_for(lambda r: len(ours(r)) >= 2), receiver.spans()
        wanted = {"kilo.calls", "http.client.request.duration", "rpc.server.call.duration"}
        wanted |= {"process.cpu.time", "process.memory.usage", "kilo.breaker.state"}
        assert receiver.wait_for(lambda r: wanted <= r.metric_names()), receiver.metric_names()
    finally:
        assert agent.stop() == 0
        receiver.stop()
    spans = {s.name: s for s in ours(receiver)}
    server = spans["kilo.agent.v1.IntegrationAgent/Call"]
    client = spans["GET"]
    assert server.parent_span_id.hex() == "00f067aa0ba902b7"
    assert client.parent_span_id == server.span_id
    assert attributes(client.attributes)["url.full"].endswith("/echo/base/v1/items?token=REDACTED")
    resource, _ = receiver.spans()[0]
    assert resource["service.name"] == "kilo-agent-e2e"
    audit = [r for r in agent.records() if "traceId" in r]
    assert [(a["traceId"], a["endpoint"], a["statusCode"]) for a in audit] == [
        (TRACE_ID, "/v1/items", 200)
    ]
    assert SECRET.encode() not in receiver.raw()
    assert SECRET not in agent.output()


@pytest.mark.parametrize("collector", ["down", "slow"])
def test_a_collector_that_is_down_or_slow_never_slows_or_fails_a_call(
    tmp_path: Path, upstream: Upstream, collector: str
) -> None:
    slow = OtlpReceiver(delay=5.0).start() if collector == "slow" else None
    endpoint = slow.endpoint if slow else f"http://127.0.0.1:{_free_port()}"
    agent = _agent(
        tmp_path,
        upstream,
        endpoint,
        OTEL_BSP_MAX_QUEUE_SIZE="64",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="8",
    )
    try:
        durations = []
        with grpc.insecure_channel(agent.address) as channel:
            stub = pb_grpc.IntegrationAgentStub(channel)
            request = pb.CallRequest(integration="echo", method="GET", path="/x")
            for _ in range(120):  # far more spans than the queue holds
                started = time.monotonic()
                assert stub.Call(request, timeout=5).status == 200
                durations.append(time.monotonic() - started)
        assert max(durations) < 1.0
        assert statistics.median(durations) < 0.1
        started = time.monotonic()
        assert agent.stop() == 0  # shutdown flush is bounded too
        assert time.monotonic() - started < 15
    finally:
        agent.stop()
        if slow:
            slow.stop()
    # The dead collector is reported, but not once per span or per export.
    warnings = [r for r in agent.records() if r.get("level") in ("warning", "WARNING")]
    assert len(warnings) < 10, warnings
