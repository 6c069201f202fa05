"""``serve --workers N``: several agent processes on one port, drained together on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import yaml

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from agent.config import parse_config
from agent.engine import Registry
from agent.events import EventHub
from tests.conftest import SECRET, base_config
from tests.support.process import start_agent


def test_two_workers_share_the_port_and_stop_together(tmp_path: Path, upstream) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(base_config(upstream.url)))
    agent = start_agent(path, extra_args=["--workers", "2"])
    try:
        serving = agent.wait_for_line(lambda r: r.get("msg") == "serving" and r.get("worker") == 1)
        first = agent.wait_for_line(lambda r: r.get("msg") == "serving" and r.get("worker") == 0)
        assert serving["address"] == first["address"] == agent.address
        assert serving["workers"] == 2
        for _ in range(6):  # separate connections: the kernel spreads them over the workers
            with grpc.insecure_channel(agent.address) as channel:
                stub = pb_grpc.IntegrationAgentStub(channel)
                answer = stub.Call(pb.CallRequest(integration="echo", method="GET", path="/w"))
                assert answer.status == 200
    finally:
        assert agent.stop() == 0
    assert SECRET not in agent.output()
    assert any(r.get("msg") == "workers stopped" for r in agent.records())


@pytest.mark.parametrize("listen", ["unix:///tmp/kilo-workers.sock"])
def test_workers_need_a_tcp_port(tmp_path: Path, listen: str) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "agent", "serve", "--workers", "2", "--listen", listen],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--workers needs a TCP listen address" in result.stderr


def test_each_worker_enforces_its_share_of_a_local_limit(upstream) -> None:  # type: ignore[no-untyped-def]
    config = base_config(upstream.url, rate_limit={"requests_per_second": 10, "burst": 10})
    cfg = parse_config(config).integrations["echo"]
    whole = Registry.from_config({"echo": cfg}, EventHub())
    half = Registry.from_config({"echo": cfg}, EventHub(), local_share=0.5)
    assert whole.get("echo").limiter.available() == pytest.approx(10)
    assert half.get("echo").limiter.available() == pytest.approx(5)
