"""The HTTP layer: one pooled httpx client per integration, and httpx errors mapped to ours."""

from agent.transport.aiohttp_transport import read_body
from agent.transport.client import build_client
from agent.transport.errors import map_transport_error

__all__ = ["build_client", "map_transport_error", "read_body"]
