"""Real agent processes that own a RedisRuntime: the ``start_agents`` fixture of the Redis tests.

Agents run as ``python -m agent serve`` (as ``tests.support.process.start_agent`` does), several
on one config.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from tests.support.process import AgentProcess

Agent = tuple[AgentProcess, pb_grpc.IntegrationAgentStub]
StartAgents = Callable[[dict[str, Any], int], Awaitable[list[Agent]]]

LAUNCHER = [sys.executable, "-m", "agent"]
ROOT = Path(__file__).resolve().parent.parent.parent


def launch(path: Path) -> AgentProcess:
    """Start one agent on the config file ``path``; wait until it logs ``serving``."""
    args = [*LAUNCHER, "serve", "--listen", "127.0.0.1:0", "--config", str(path)]
    env = {k: v for k, v in os.environ.items() if k != "KILO_AGENT_CONFIG"}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    agent = AgentProcess(proc)
    for stream in (proc.stderr, proc.stdout):
        pump = threading.Thread(target=agent._pump, args=(stream,), daemon=True)
        pump.start()
        agent._pumps.append(pump)
    try:
        record = agent.wait_for_line(lambda r: r.get("msg") == "serving")
    except AssertionError:
        agent.stop()
        raise
    agent.address = record["address"]
    return agent


@pytest.fixture
async def start_agents(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StartAgents]:
    """``await start_agents(config, n)``: n agents on one config; stopped (exit 0) after."""
    running: list[tuple[AgentProcess, grpc.aio.Channel]] = []

    async def start(config: dict[str, Any], count: int) -> list[Agent]:
        agents = []
        for _ in range(count):
            path = tmp_path_factory.mktemp("agent") / "agent.yaml"
            path.write_text(yaml.safe_dump(config))
            process = await asyncio.to_thread(launch, path)
            channel = grpc.aio.insecure_channel(process.address)
            running.append((process, channel))
            agents.append((process, pb_grpc.IntegrationAgentStub(channel)))
        return agents

    yield start
    for process, channel in running:
        await channel.close()
        assert await asyncio.to_thread(process.stop) == 0
