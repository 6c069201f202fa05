"""The call pipeline: validation, credentials, transport; knows nothing of gRPC."""

from agent.engine.integration import Integration
from agent.engine.pipeline import Engine
from agent.engine.registry import Registry
from agent.engine.types import CallMetrics, OutboundRequest, OutboundResponse, ResponseStream
from agent.policies import CircuitState

__all__ = [
    "CallMetrics",
    "CircuitState",
    "Engine",
    "Integration",
    "OutboundRequest",
    "OutboundResponse",
    "Registry",
    "ResponseStream",
]
