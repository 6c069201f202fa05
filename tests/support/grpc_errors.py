"""Read the rich error details (ErrorInfo, BadRequest, RetryInfo) of a failed gRPC call."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2


@dataclass
class ErrorDetails:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    violations: list[tuple[str, str]]
    retry_delay: float | None


def details_of(error: grpc.RpcError) -> ErrorDetails:
    """Decode ``grpc-status-details-bin`` of an (aio or sync) RpcError."""
    raw = None
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            raw = value
    status = status_pb2.Status.FromString(raw) if raw else status_pb2.Status()
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    retry = error_details_pb2.RetryInfo()
    retry_delay = None
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
        elif detail.Is(retry.DESCRIPTOR):
            detail.Unpack(retry)
            retry_delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return ErrorDetails(
        code=error.code(),  # type: ignore[attr-defined]
        message=error.details() or "",  # type: ignore[attr-defined]
        reason=info.reason,
        domain=info.domain,
        violations=[(v.field, v.description) for v in bad.field_violations],
        retry_delay=retry_delay,
    )
