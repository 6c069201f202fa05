"""End to end: a real ``kilo-agent serve`` process, real gRPC, a real loopback upstream."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from tests.conftest import SECRET, base_config
from tests.support.grpc_errors import details_of
from tests.support.process import AgentProcess, start_agent


@pytest.fixture
def agent_process(tmp_path: Path, upstream):  # type: ignore[no-untyped-def]
    config = base_config(upstream.url)
    config["server"] = {"grace_period": "10s"}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    agent = start_agent(path)
    yield agent
    agent.stop()
    assert SECRET not in agent.output()


def stub_for(agent: AgentProcess) -> tuple[grpc.Channel, pb_grpc.IntegrationAgentStub]:
    channel = grpc.insecure_channel(agent.address)
    return channel, pb_grpc.IntegrationAgentStub(channel)


def test_call_stream_list_and_health(agent_process: AgentProcess, upstream) -> None:  # type: ignore[no-untyped-def]
    channel, stub = stub_for(agent_process)
    with channel:
        response = stub.Call(
            pb.CallRequest(integration="echo", method="GET", path="/models"), timeout=10
        )
        assert response.status == 200
        assert json.loads(response.body)["headers"]["authorization"] == f"Bearer {SECRET}"
        assert SECRET not in str(response.meta)

        chunks = stub.CallStream(
            pb.CallRequest(integration="up", method="GET", path="/sse?events=2&hold=e2e"),
            timeout=20,
        )
        first = next(chunks)
        assert first.start.status == 200
        event = next(chunks)
        assert b"tok0" in event.data
        assert "e2e" not in upstream.finished_streams  # the first event came before the end
        upstream.release("e2e")
        rest = list(chunks)
        assert rest[-1].WhichOneof("part") == "meta"

        listed = stub.ListIntegrations(pb.ListIntegrationsRequest(), timeout=10)
        assert {i.name for i in listed.integrations} == {"echo", "up", "restricted", "dead"}

        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    record = agent_process.wait_for_line(lambda r: r.get("msg") == "serving")
    assert record["loop"] == "uvloop"


def test_sigterm_drains_in_flight_call_then_exits_zero(
    agent_process: AgentProcess, upstream
) -> None:  # type: ignore[no-untyped-def]
    channel, stub = stub_for(agent_process)
    with channel:
        slow = stub.Call.future(
            pb.CallRequest(integration="up", method="GET", path="/slow?delay=1.5&id=drain"),
            timeout=20,
        )
        # Wait until the slow call reached the upstream, then ask the agent to stop.
        seen = threading.Event()
        while not seen.is_set():
            if any(r.path_qs == "/slow?delay=1.5&id=drain" for r in upstream.requests):
                seen.set()
            else:
                seen.wait(0.01)
        agent_process.proc.send_signal(signal.SIGTERM)
        agent_process.wait_for_line(lambda r: r.get("msg") == "draining")

        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as refused:
            stub.Call(pb.CallRequest(integration="echo", method="GET", path="/x"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert details_of(refused.value).reason == "SHUTTING_DOWN"

        assert slow.result(timeout=20).status == 200  # the in-flight call finished normally
    assert agent_process.proc.wait(15) == 0
