"""The one place where the agent's typed errors become gRPC statuses with rich details.

Each error carries ``google.rpc.ErrorInfo`` (domain ``kilo.agent``, the SPEC reason), plus
``BadRequest`` field violations for invalid requests and ``RetryInfo`` when trying again later
may succeed.
"""

from __future__ import annotations

import math
from typing import Final

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from agent import errors

__all__ = ["DOMAIN", "code_for", "to_grpc_status"]

DOMAIN: Final = "kilo.agent"

_CODES: Final[dict[type[errors.AgentError], grpc.StatusCode]] = {
    errors.UnknownIntegration: grpc.StatusCode.NOT_FOUND,
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.BodyTooLarge: grpc.StatusCode.INVALID_ARGUMENT,
    errors.CallerNotAllowed: grpc.StatusCode.PERMISSION_DENIED,
    errors.PathNotAllowed: grpc.StatusCode.PERMISSION_DENIED,
    errors.CallerUnauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.RateLimiterUnavailable: grpc.StatusCode.UNAVAILABLE,  # before its base, RateLimited
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.CircuitOpen: grpc.StatusCode.UNAVAILABLE,
    errors.UpstreamUnreachable: grpc.StatusCode.UNAVAILABLE,
    errors.CredentialsUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    errors.UpstreamTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def code_for(error: errors.AgentError) -> grpc.StatusCode:
    """The gRPC code of an error class (INTERNAL for one this table forgot)."""
    for cls in type(error).__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_grpc_status(error: errors.AgentError) -> grpc.Status:
    """Build the status (code, message, details) that ``context.abort_with_status`` sends."""
    code = code_for(error)
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=DOMAIN, metadata=error.metadata()
            )
        )
    ]
    if isinstance(error, errors.InvalidRequest) and error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        seconds = math.floor(retry_after)
        delay = duration_pb2.Duration(seconds=seconds, nanos=int((retry_after - seconds) * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message, details=details
    )
    return rpc_status.to_status(status)
