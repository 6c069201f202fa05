"""The one asyncio Redis client of an agent (redis-py, with hiredis parsing replies when present).

Short connect and socket timeouts; one retry on a broken connection only (a pooled connection
Redis closed while idle), never on a timeout, and no backoff: the limiter's own deadline bounds
every operation and the health probe does the reconnecting.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["RedisUnavailable", "create_client", "hiredis_available"]


class RedisUnavailable(Exception):
    """An operation did not complete because Redis is (or just became) unreachable."""


def hiredis_available() -> bool:
    """Whether redis-py parses replies with hiredis (C) rather than in Python."""
    try:
        from redis.utils import HIREDIS_AVAILABLE
    except ImportError:  # pragma: no cover - moved in some redis-py version
        return False
    return bool(HIREDIS_AVAILABLE)


def create_client(url: str, *, connect_timeout: float, timeout: float, **extra: Any) -> Redis:
    """A client for ``redis://``, ``rediss://`` (TLS) or ``unix://`` URLs."""
    return Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=0,
        client_name="kilo-agent",
        decode_responses=False,
        **extra,
    )
