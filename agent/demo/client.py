"""The demo's app side: a grpc.aio client whose every call becomes an :class:`Outcome`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.demo.render import Outcome

if TYPE_CHECKING:
    from agent.api.kilo.agent.v1.agent_pb2_grpc import IntegrationAgentAsyncStub

__all__ = ["DemoClient"]

_DEADLINE = 15.0  # seconds; no call of the tour should come near it


class DemoClient:
    """Calls through the agent and times each answer against the tour's start."""

    def __init__(self, stub: IntegrationAgentAsyncStub, started: float) -> None:
        self.stub = stub
        self.started = started

    def now(self) -> float:
        return time.monotonic() - self.started

    async def call(self, integration: str, path: str, *, label: str = "") -> Outcome:
        """``GET path`` on ``integration``; an agent error is an outcome too, not an exception."""
        shown = f"{label}GET {path.split('?')[0]}"
        request = pb.CallRequest(integration=integration, method="GET", path=path)
        try:
            answer = await self.stub.Call(request, timeout=_DEADLINE)
        except grpc.aio.AioRpcError as error:
            return _from_error(error, self.now(), shown)
        meta = answer.meta
        return Outcome(
            at=self.now(),
            call=shown,
            status=answer.status,
            attempts=meta.attempts,
            wait=meta.rate_limit_wait.ToTimedelta().total_seconds(),
            integration=meta.integration,
            cache_hit=meta.cache_hit,
            trace_id=meta.trace_id,
            body=answer.body,
        )

    async def status(self, integration: str) -> pb.IntegrationStatus:
        """The integration's live row of ``ListIntegrations``."""
        listed = await self.stub.ListIntegrations(pb.ListIntegrationsRequest(), timeout=_DEADLINE)
        for row in listed.integrations:
            if row.name == integration:
                return row
        raise LookupError(f"ListIntegrations has no integration '{integration}'")

    @staticmethod
    def circuit(row: pb.IntegrationStatus) -> str:
        return pb.CircuitState.Name(row.circuit_state)


def _from_error(error: grpc.aio.AioRpcError, at: float, call: str) -> Outcome:
    """Decode ErrorInfo and RetryInfo from ``grpc-status-details-bin``."""
    # from_call reads grpc-status-details-bin; an AioRpcError has the Call methods it uses.
    status = rpc_status.from_call(error) or status_pb2.Status()  # type: ignore[arg-type]
    info = error_details_pb2.ErrorInfo()
    retry = error_details_pb2.RetryInfo()
    retry_after: float | None = None
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(retry.DESCRIPTOR):
            detail.Unpack(retry)
            retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return Outcome(
        at=at,
        call=call,
        code=error.code().name,
        reason=str(info.reason) or (error.details() or "")[:40],
        retry_after=retry_after,
    )
