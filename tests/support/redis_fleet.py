"""Real agent processes that own a RedisRuntime: the ``start_agents`` fixture of the Redis tests.

Agents run as ``python -m agent serve`` (as ``tests.support.process.start_agent`` does), several
on one config.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
import yaml

from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from tests.support.process import AgentProcess, start_agent

Agent = tuple[AgentProcess, pb_grpc.IntegrationAgentStub]
StartAgents = Callable[[dict[str, Any], int], Awaitable[list[Agent]]]


@pytest.fixture
async def start_agents(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StartAgents]:
    """``await start_agents(config, n)``: n agents on one config; stopped (exit 0) after."""
    running: list[tuple[AgentProcess, grpc.aio.Channel]] = []

    async def start(config: dict[str, Any], count: int) -> list[Agent]:
        agents = []
        for _ in range(count):
            path = tmp_path_factory.mktemp("agent") / "agent.yaml"
            path.write_text(yaml.safe_dump(config))
            process = await asyncio.to_thread(start_agent, path)
            channel = grpc.aio.insecure_channel(process.address)
            running.append((process, channel))
            agents.append((process, pb_grpc.IntegrationAgentStub(channel)))
        return agents

    yield start
    for process, channel in running:
        await channel.close()
        assert await asyncio.to_thread(process.stop) == 0
