"""Assembles the grpc.aio server: the main service, health, reflection, listen address."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from agent.server.servicer import IntegrationAgentServicer

__all__ = ["SERVICE_NAME", "GrpcServer"]

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["IntegrationAgent"].full_name
_MAX_MESSAGE: Final = 64 * 1024 * 1024  # bodies up to max_body plus headroom, both ways


class GrpcServer:
    """The server with its health state; ``start`` binds, ``drain`` stops gracefully."""

    def __init__(
        self,
        servicer: IntegrationAgentServicer,
        listen: str,
        *,
        interceptors: Sequence[Any] = (),
        reuse_port: bool = False,
    ) -> None:
        self.servicer = servicer
        self.listen = listen
        self.health = HealthServicer()
        self.server = grpc.aio.server(
            interceptors=list(interceptors) or None,  # telemetry's server span, when enabled
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                # A second agent on the same port must fail, not share it -- unless it is one of
                # the workers of `serve --workers N`, which share the port on purpose.
                ("grpc.so_reuseport", 1 if reuse_port else 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ],
        )
        pb_grpc.add_IntegrationAgentServicer_to_server(servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        self.address = ""

    async def start(self) -> str:
        """Bind and start serving; returns the bound address (the real port when 0 was asked)."""
        port = self.server.add_insecure_port(self.listen)
        if self.listen.startswith("unix:"):
            self.address = self.listen
        else:
            host = self.listen.rsplit(":", 1)[0]
            self.address = f"{host}:{port}"
        await self.server.start()
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return self.address

    async def drain(self, grace: float) -> bool:
        """Health NOT_SERVING and new calls refused at once; in-flight calls get ``grace``.

        The server keeps listening while it drains, so health checks see NOT_SERVING and new
        calls get a clear UNAVAILABLE / SHUTTING_DOWN instead of a refused connection.
        Returns False when calls were still running at the end of the grace period.
        """
        self.servicer.draining = True
        await self.health.enter_graceful_shutdown()
        drained = await self.servicer.wait_idle(grace)
        await self.server.stop(0.5 if drained else 0)
        return drained
