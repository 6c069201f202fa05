"""Shared fixtures: a real loopback upstream for the whole run, and in-process agents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest
import yaml

from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from agent.app import AgentApp
from agent.config import parse_config
from tests.support.process import AgentProcess
from tests.support.process import start_agent as start_agent_process_sync
from tests.support.upstream import Upstream, run_upstream

pytest_plugins = ["tests.support.fixtures_credentials"]

SECRET = "sk-test-Zq8vTt3rXbLm4WcN"  # the bearer token the agent injects; must never leak


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


def base_config(upstream_url: str, **integration_overrides: Any) -> dict[str, Any]:
    """A config with integrations pointing at the loopback upstream."""
    echo: dict[str, Any] = {
        "base_url": f"{upstream_url}/echo/base",
        "auth": {"type": "bearer", "token": SECRET},
        "headers": {"X-Static": "static-value"},
        "max_body": "1KiB",
        **integration_overrides,
    }
    return {
        "listen": {"grpc": "127.0.0.1:0"},
        "server": {"grace_period": "2s"},
        "integrations": {
            "echo": echo,
            "up": {"base_url": upstream_url, "timeout": "5s"},
            "restricted": {
                "base_url": f"{upstream_url}/echo",
                "allow_paths": ["/v1/models", "/chat"],
            },
            "dead": {"base_url": "http://127.0.0.1:9", "timeout": "2s"},
        },
    }


Started = tuple[AgentApp, pb_grpc.IntegrationAgentStub, grpc.aio.Channel]
StartedProcess = tuple[AgentProcess, pb_grpc.IntegrationAgentStub, grpc.aio.Channel]


@pytest.fixture
async def start_agent() -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[Started]]]:
    """Start in-process agents from config dicts; all are drained and closed after the test."""
    running: list[Started] = []

    async def start(config: dict[str, Any]) -> Started:
        app = AgentApp(parse_config(config))
        address = await app.start()
        channel = grpc.aio.insecure_channel(address)
        started = (app, pb_grpc.IntegrationAgentStub(channel), channel)
        running.append(started)
        return started

    yield start
    for app, _stub, channel in running:
        await channel.close()
        await app.stop()


@pytest.fixture
async def start_agent_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[StartedProcess]]]:
    """Start real ``kilo-agent serve`` processes from config dicts; stopped after the test.

    Each must exit 0 on SIGTERM and print no secret of the test config.
    """
    running: list[StartedProcess] = []

    async def start(config: dict[str, Any]) -> StartedProcess:
        path = tmp_path_factory.mktemp("agent") / "agent.yaml"
        path.write_text(yaml.safe_dump(config))
        process = await asyncio.to_thread(start_agent_process_sync, path)
        channel = grpc.aio.insecure_channel(process.address)
        started = (process, pb_grpc.IntegrationAgentStub(channel), channel)
        running.append(started)
        return started

    yield start
    for process, _stub, channel in running:
        await channel.close()
        assert await asyncio.to_thread(process.stop) == 0
        assert SECRET not in process.output()


@pytest.fixture
async def agent(start_agent, upstream: Upstream) -> Started:  # type: ignore[no-untyped-def]
    """One in-process agent on the default test config."""
    return await start_agent(base_config(upstream.url))
