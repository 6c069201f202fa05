"""``kilo.agent.v1.IntegrationAgent``: decode, identify the caller, run the engine, encode.

Errors of the agent's own making are turned into gRPC statuses by ``status.py`` only; anything
unexpected is logged (without request data) and answered INTERNAL with a generic message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf import timestamp_pb2

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from agent.engine import CircuitState, Engine, OutboundRequest
from agent.errors import AgentError, ShuttingDown
from agent.events import CallFinished, EventHub
from agent.server.callers import CallerAuthenticator
from agent.server.convert import to_headers, to_meta, to_outbound
from agent.server.status import to_grpc_status

__all__ = ["IntegrationAgentServicer"]

_log = logging.getLogger("agent.server")
_CIRCUIT = {
    CircuitState.CLOSED: pb.CLOSED,
    CircuitState.OPEN: pb.OPEN,
    CircuitState.HALF_OPEN: pb.HALF_OPEN,
}
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


class IntegrationAgentServicer(pb_grpc.IntegrationAgentServicer):
    """The main service; one instance per server."""

    def __init__(
        self,
        engine: Engine,
        callers: CallerAuthenticator,
        hub: EventHub,
        *,
        trace_id: Callable[[Any], str] | None = None,
    ) -> None:
        self._engine = engine
        self._callers = callers
        self._hub = hub
        # The call's trace id from its invocation metadata; telemetry passes the server span's.
        self._trace_id = trace_id or _trace_id
        self.draining = False
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def inflight(self) -> int:
        return self._inflight

    async def wait_idle(self, limit: float) -> bool:
        """Wait until no call is in flight; False if ``limit`` seconds ran out first."""
        try:
            async with asyncio.timeout(limit):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def _enter(self) -> None:
        self._inflight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    async def Call(
        self, request: pb.CallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CallResponse:
        self._enter()
        try:
            return await self._call(request, context)
        finally:
            self._leave()

    async def CallStream(
        self, request: pb.CallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.CallChunk]:
        self._enter()
        try:
            async for chunk in self._call_stream(request, context):
                yield chunk
        finally:
            self._leave()

    async def _call(
        self, request: pb.CallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CallResponse:
        started = time.monotonic()
        outbound, trace_id = None, self._trace_id(context.invocation_metadata())
        try:
            outbound = self._admit(request, context)
            response = await self._engine.call(outbound)
        except AgentError as error:
            self._finished(request, outbound, 0, error.reason, started, 0, trace_id)
            await _abort(context, error)
        except Exception:
            _log.exception(
                "unexpected error serving Call", extra={"integration": request.integration}
            )
            self._finished(request, outbound, 0, "INTERNAL", started, 0, trace_id)
            await context.abort(
                grpc.StatusCode.INTERNAL, "internal error in the agent; see its logs"
            )
        self._finished(
            request, outbound, response.status, "ok", started, response.meta.attempts, trace_id
        )
        return pb.CallResponse(
            status=response.status,
            headers=to_headers(response.headers),
            body=response.body,
            meta=to_meta(response.meta, trace_id),
        )

    async def _call_stream(
        self, request: pb.CallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.CallChunk]:
        started = time.monotonic()
        outbound, status, attempts = None, 0, 0
        trace_id = self._trace_id(context.invocation_metadata())
        try:
            outbound = self._admit(request, context)
            stream = await self._engine.stream(outbound)
            status, attempts = stream.status, stream.meta.attempts
            yield pb.CallChunk(
                start=pb.ResponseStart(status=stream.status, headers=to_headers(stream.headers))
            )
            async for data in stream.body:
                yield pb.CallChunk(data=data)
            yield pb.CallChunk(meta=to_meta(stream.meta, trace_id))
        except AgentError as error:
            self._finished(request, outbound, status, error.reason, started, attempts, trace_id)
            await _abort(context, error)
        except Exception:
            _log.exception(
                "unexpected error serving CallStream", extra={"integration": request.integration}
            )
            self._finished(request, outbound, status, "INTERNAL", started, attempts, trace_id)
            await context.abort(
                grpc.StatusCode.INTERNAL, "internal error in the agent; see its logs"
            )
        self._finished(request, outbound, status, "ok", started, attempts, trace_id)

    async def ListIntegrations(
        self, request: pb.ListIntegrationsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListIntegrationsResponse:
        try:
            self._callers.authenticate(context.invocation_metadata())
        except AgentError as error:
            await _abort(context, error)
        statuses = []
        for integration in self._engine.registry:
            breaker = integration.breaker
            status = pb.IntegrationStatus(
                name=integration.name,
                base_url=integration.display_url,
                circuit_state=_CIRCUIT[breaker.state] if breaker else pb.CIRCUIT_STATE_UNSPECIFIED,
                rate_limit_available=integration.limiter.available(),
                credential_state=integration.credentials.state(),
            )
            expires = integration.credentials.expires_at()
            if expires is not None:
                stamp = timestamp_pb2.Timestamp()
                stamp.FromDatetime(expires)
                status.credential_expires_at.CopyFrom(stamp)
            statuses.append(status)
        return pb.ListIntegrationsResponse(integrations=statuses)

    # -- helpers --------------------------------------------------------------------------

    def _admit(
        self, request: pb.CallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> OutboundRequest:
        """Caller identity, permission and decoding; raises AgentError."""
        if self.draining:
            raise ShuttingDown(
                "the agent is shutting down and takes no new calls; retry on another replica"
            )
        metadata = context.invocation_metadata()
        caller = self._callers.authenticate(metadata)
        self._callers.authorize(caller, request.integration)
        return to_outbound(request, caller=caller.name, time_remaining=context.time_remaining())

    def _finished(
        self,
        request: pb.CallRequest,
        outbound: OutboundRequest | None,
        status: int,
        outcome: str,
        started: float,
        attempts: int,
        trace_id: str,
    ) -> None:
        if not self._hub.has_subscribers(CallFinished):
            return
        self._hub.publish(
            CallFinished(
                integration=request.integration,
                caller=outbound.caller if outbound else "",
                method=request.method,
                endpoint=request.path.partition("?")[0],
                status=status,
                outcome=outcome,
                duration=time.monotonic() - started,
                attempts=attempts,
                trace_id=trace_id,
            )
        )


def _trace_id(metadata: Any) -> str:
    """The caller's W3C trace id, so the call can be found under the caller's trace."""
    for key, value in metadata or ():
        if key == "traceparent":
            match = _TRACEPARENT.match(value if isinstance(value, str) else value.decode())
            return match.group(1) if match and match.group(1) != "0" * 32 else ""
    return ""


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: AgentError) -> NoReturn:
    # grpc-stubs lacks the aio signature; grpc.aio.ServicerContext.abort_with_status exists.
    await context.abort_with_status(to_grpc_status(error))  # type: ignore[attr-defined]
    raise AssertionError("abort_with_status returned")  # pragma: no cover
