"""kilo-agent: the outbound-integration sidecar.

Apps call the agent over gRPC (``kilo.agent.v1.IntegrationAgent``); the agent applies rate limits,
circuit breaking, retries, credentials and telemetry to every call it makes to a third-party API.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
