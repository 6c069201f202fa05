"""Builds the agent from one Config and runs it: start, serve until a signal, drain, exit.

Everything the hot path needs (clients, credential providers, the engine) is built here once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.engine import Engine, Registry
from agent.events import EventHub, RedisStateChanged
from agent.server import CallerAuthenticator, GrpcServer, IntegrationAgentServicer
from agent.telemetry import Telemetry

if TYPE_CHECKING:
    from agent.redis import RedisRuntime

__all__ = ["AgentApp", "run"]

_log = logging.getLogger("agent")


class AgentApp:
    """One running agent: registry, engine, gRPC server."""

    def __init__(
        self,
        config: Any,
        *,
        listen: str | None = None,
        telemetry: Callable[[Any, EventHub], Telemetry] = Telemetry,
        worker: tuple[int, int] | None = None,
    ) -> None:
        """``worker``: ``(index, count)`` when this is one of ``serve --workers N``: the port is
        shared (SO_REUSEPORT) and each ``scope: local`` limit is divided by ``count``."""
        self.config = config
        self.hub = EventHub()
        # Before anything publishes: telemetry subscribes to the hub (tests pass their own).
        self.telemetry = telemetry(config.telemetry, self.hub)
        # One Redis client per agent (None without a `redis` block): global limits, shared tokens.
        self.redis: RedisRuntime | None = None
        if config.redis is not None:  # imported only when used: redis-py costs ~20 MiB resident
            from agent.redis import RedisRuntime

            self.redis = RedisRuntime.from_config(config.redis, self.hub)
        self.worker = worker
        share = 1.0 / worker[1] if worker else 1.0
        self.registry = Registry.from_config(
            config.integrations, self.hub, redis=self.redis, local_share=share
        )
        self.telemetry.instrument_integrations(self.registry)
        self.telemetry.watch_credentials(
            lambda: [(i.name, i.credentials.expires_at()) for i in self.registry]
        )
        self.engine = Engine(self.registry, self.hub)
        self.callers = callers = CallerAuthenticator(config.callers)
        self.servicer = IntegrationAgentServicer(
            self.engine, callers, self.hub, trace_id=self.telemetry.trace_id_source
        )
        self.server = GrpcServer(
            self.servicer,
            listen or config.listen.grpc,
            interceptors=self.telemetry.interceptors,
            reuse_port=worker is not None,
        )
        self.address = ""

    async def start(self) -> str:
        if self.redis is not None:
            await self.redis.start()  # an unreachable Redis is not fatal: limits fall back
            health = self.redis.health  # the starting state, for the kilo.redis.available gauge
            self.hub.publish(
                RedisStateChanged(health.available, health.url, health.reason, health.fallback)
            )
        for integration in self.registry:
            await integration.credentials.start()
        self.callers.start()
        self.address = await self.server.start()
        self.telemetry.start(self.address)
        _log.info(
            "serving",
            extra={
                "address": self.address,
                "integrations": sorted(i.name for i in self.registry),
                "callers": len(self.config.callers),
                "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
                **({"worker": self.worker[0], "workers": self.worker[1]} if self.worker else {}),
            },
        )
        return self.address

    async def stop(self) -> None:
        grace = self.config.server.grace_period
        _log.info("draining", extra={"inflight": self.servicer.inflight, "grace_period": grace})
        drained = await self.server.drain(grace)
        if not drained:
            _log.warning("grace period over: cancelled the calls still in flight")
        await self.registry.aclose()
        await self.callers.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.telemetry.aclose()  # audit lines, spans, metrics: flushed within a limit
        _log.info("stopped")

    async def serve_until_signal(self) -> None:
        """Serve until SIGTERM or SIGINT, then drain."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await self.stop()


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; this is for odd platforms
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(config: Any, *, listen: str | None = None, worker: tuple[int, int] | None = None) -> int:
    """Run the agent on uvloop until a signal; returns the process exit code."""

    async def main() -> None:
        app = AgentApp(config, listen=listen, worker=worker)
        await app.serve_until_signal()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())
    return 0
