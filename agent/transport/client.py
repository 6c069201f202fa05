"""httpx client factory: built once per integration at start-up, reused by every call.

Tuned after ../shared/reference/performance.md: httpcore scans its pool on every request, so the
pool is sized (not left unbounded), HTTP/2 is offered to upstreams that negotiate it over TLS
(one multiplexed connection instead of a pool scan), and ``sniffio`` is installed so httpcore
detects asyncio cheaply. Redirects are handled by the engine (same origin only), so the client
never follows them on its own.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

__all__ = ["build_client"]


def build_client(transport_cfg: Any, *, timeout: float) -> httpx.AsyncClient:
    """Create the pooled client for one integration from its ``transport`` config block."""
    limits = httpx.Limits(
        max_connections=transport_cfg.max_connections,
        max_keepalive_connections=transport_cfg.max_keepalive_connections,
        keepalive_expiry=transport_cfg.keepalive_expiry,
    )
    verify: ssl.SSLContext | bool = transport_cfg.verify
    if transport_cfg.verify and transport_cfg.ca_file:
        verify = ssl.create_default_context(cafile=transport_cfg.ca_file)
    return httpx.AsyncClient(
        http2=transport_cfg.http2,
        limits=limits,
        timeout=httpx.Timeout(timeout),
        verify=verify,
        follow_redirects=False,
        trust_env=False,  # no proxy/netrc surprises from the environment: the config is the truth
        headers={"User-Agent": "kilo-agent"},
    )
