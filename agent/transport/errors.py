"""The one place where httpx's exceptions become the agent's typed errors.

Messages name the integration and its *display* URL only: a webhook URL is itself a secret, and
httpx's own messages can contain the full URL, so they are never passed through.
"""

from __future__ import annotations

import httpx

from agent.errors import AgentError, UpstreamTimeout, UpstreamUnreachable

__all__ = ["error_type", "map_transport_error"]


def error_type(exc: BaseException) -> str:
    """A low-cardinality name for the failure (OTel ``error.type``)."""
    return type(exc).__name__


def map_transport_error(exc: httpx.HTTPError, *, integration: str, display_url: str) -> AgentError:
    """Translate an httpx failure into UpstreamTimeout or UpstreamUnreachable."""
    kind = error_type(exc)
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(
            f"integration '{integration}' ({display_url}) did not answer in time ({kind}); "
            "raise the call's timeout or deadline, or the integration's `timeout`",
            integration=integration,
        )
    if isinstance(exc, httpx.ConnectError):
        detail = "could not connect"
    elif isinstance(exc, httpx.RemoteProtocolError):
        detail = "the connection was closed or broke the HTTP protocol"
    elif isinstance(exc, httpx.ReadError | httpx.WriteError):
        detail = "the connection was reset"
    else:
        detail = "the request failed"
    return UpstreamUnreachable(
        f"integration '{integration}' ({display_url}): {detail} ({kind}); check that the "
        "upstream is up and that `base_url` is right",
        integration=integration,
    )
