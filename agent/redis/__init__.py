"""The shared Redis: ``scope: global`` rate limits and fleet-wide token refresh.

Laid out like envoyproxy/ratelimit's ``redis/``: ``client`` (the one asyncio client, hiredis),
``health`` (reachable or not, one warning per change, reconnect probing), ``script`` (the GCRA
Lua script, loaded once, called by SHA), ``limiter`` (``RedisLimiter``, the ``Limiter`` protocol
on that script, with the local fallback), ``tokens`` (``RedisTokenStore``, the credentials'
``SharedTokenStore``: a lock and an AES-GCM sealed cache) and ``runtime`` (``RedisRuntime``, what
``AgentApp`` owns: client + health + start/aclose).
"""

from agent.redis.client import RedisUnavailable, create_client, hiredis_available
from agent.redis.health import RedisHealth
from agent.redis.limiter import RedisLimiter
from agent.redis.runtime import RedisRuntime
from agent.redis.script import LIMITER_LUA, LuaScript
from agent.redis.tokens import RedisTokenStore, derive_key

__all__ = [
    "LIMITER_LUA",
    "LuaScript",
    "RedisHealth",
    "RedisLimiter",
    "RedisRuntime",
    "RedisTokenStore",
    "RedisUnavailable",
    "create_client",
    "derive_key",
    "hiredis_available",
]
