"""httpx client factory: built once per integration at start-up, reused by every call.

Tuned after ../shared/reference/performance.md and benchmarks/README.md: by default requests go
through aiohttp's asyncio-native pool under httpx's API (httpcore's pool scan and anyio layer
cost ~2x the CPU per call); ``transport.http2: true`` selects httpx's own transport with HTTP/2
for upstreams that negotiate it over TLS. The pool is sized from config, never unbounded.
Redirects are handled by the engine (same origin only), so the client never follows them.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from agent.transport.aiohttp_transport import AiohttpTransport

__all__ = ["build_client"]


def build_client(
    transport_cfg: Any, *, timeout: float, ca_file: str | None = None
) -> httpx.AsyncClient:
    """Create the pooled client for one integration from its ``transport`` config block.

    ``ca_file`` is a CA bundle the credentials imply (the Kubernetes service-account CA); the
    config's own ``transport.ca_file`` wins over it.
    """
    limits = httpx.Limits(
        max_connections=transport_cfg.max_connections,
        max_keepalive_connections=transport_cfg.max_keepalive_connections,
        keepalive_expiry=transport_cfg.keepalive_expiry,
    )
    verify: ssl.SSLContext | bool = transport_cfg.verify
    cafile = transport_cfg.ca_file or ca_file
    if transport_cfg.verify and cafile:
        verify = ssl.create_default_context(cafile=cafile)
    transport: httpx.AsyncBaseTransport
    if transport_cfg.http2:
        transport = httpx.AsyncHTTPTransport(http2=True, limits=limits, verify=verify)
    else:
        transport = AiohttpTransport(limits=limits, verify=verify)
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,  # no proxy/netrc surprises from the environment: the config is the truth
        headers={"User-Agent": "kilo-agent"},
    )
