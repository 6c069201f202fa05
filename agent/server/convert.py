"""Conversions between protobuf messages and the engine's plain types, done once per call."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from google.protobuf import duration_pb2

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.engine import CallMetrics, OutboundRequest

__all__ = ["duration", "to_headers", "to_meta", "to_outbound"]


def duration(seconds: float) -> duration_pb2.Duration:
    whole = math.floor(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))


def to_outbound(
    request: pb.CallRequest, *, caller: str, time_remaining: float | None
) -> OutboundRequest:
    """Decode a CallRequest; ``time_remaining`` is the gRPC deadline as seconds from now."""
    timeout = None
    if request.HasField("timeout"):
        timeout = request.timeout.seconds + request.timeout.nanos / 1e9
        if timeout <= 0:
            timeout = None
    return OutboundRequest(
        integration=request.integration,
        method=request.method,
        path=request.path,
        headers=tuple((h.name, h.value) for h in request.headers),
        body=request.body,
        timeout=timeout,
        deadline=None if time_remaining is None else time.monotonic() + time_remaining,
        idempotency_key=request.idempotency_key,
        tokens=request.tokens,
        caller=caller,
    )


def to_headers(headers: Iterable[tuple[str, str]]) -> list[pb.Header]:
    return [pb.Header(name=name, value=value) for name, value in headers]


def to_meta(meta: CallMetrics, trace_id: str) -> pb.CallMeta:
    return pb.CallMeta(
        integration=meta.integration,
        attempts=meta.attempts,
        rate_limit_wait=duration(meta.rate_limit_wait),
        upstream_duration=duration(meta.upstream_duration),
        cache_hit=meta.cache_hit,
        trace_id=trace_id,
    )
