"""What goes in and out of the engine: plain frozen data, no gRPC and no httpx types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["CallMetrics", "OutboundRequest", "OutboundResponse", "ResponseStream"]

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """One call an app asked for, as the server decoded it."""

    integration: str
    method: str
    path: str  # relative to the integration's base_url; may carry "?query"
    headers: Headers = ()
    body: bytes = b""
    timeout: float | None = None  # seconds, from CallRequest.timeout
    deadline: float | None = None  # absolute time.monotonic() seconds, from the gRPC deadline
    idempotency_key: str = ""
    tokens: int = 0
    caller: str = ""


@dataclass(slots=True)
class CallMetrics:
    """What the engine learned while serving one call (becomes ``CallMeta``)."""

    integration: str
    attempts: int = 0
    rate_limit_wait: float = 0.0
    upstream_duration: float = 0.0
    cache_hit: bool = False


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    """A complete upstream answer (any status, 4xx/5xx included)."""

    status: int
    headers: Headers
    body: bytes
    meta: CallMetrics


@dataclass(slots=True)
class ResponseStream:
    """An upstream answer whose body is still arriving; ``meta`` is final once ``body`` ends."""

    status: int
    headers: Headers
    body: AsyncIterator[bytes]
    meta: CallMetrics = field(default_factory=lambda: CallMetrics(integration=""))
