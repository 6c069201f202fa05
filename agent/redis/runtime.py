"""``RedisRuntime``: the agent's Redis client, its health, and the limiters and stores built on it.

Owned by ``AgentApp``: built from ``config.redis`` before the registry, ``start()``-ed before the
server takes calls, ``aclose()``-d after the registry at shutdown. It owns every background task
of the package (the health probe, and the fire-and-forget writes of ``observe``/``correct``,
which are synchronous on the call path): they live and die with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from redis.exceptions import RedisError

from agent.events import EventHub
from agent.policies import SYSTEM_CLOCK, Clock
from agent.redis.client import RedisUnavailable, create_client
from agent.redis.health import RedisHealth
from agent.redis.limiter import RedisLimiter
from agent.redis.script import LIMITER_LUA, LuaScript
from agent.redis.tokens import RedisTokenStore

__all__ = ["RedisRuntime", "RedisUnavailable"]

_log = logging.getLogger("agent.redis")

T = TypeVar("T")

_MAX_BACKGROUND = 1024  # pending background writes; beyond this they are dropped (and counted)


class RedisRuntime:
    """One agent's connection to the shared Redis (see the module docstring)."""

    def __init__(self, config: Any, hub: EventHub | None = None, *, clock: Clock = SYSTEM_CLOCK):
        self.config = config
        self.hub = hub
        self.clock = clock
        self.url = config.display_url()
        self.prefix: str = config.key_prefix
        self.timeout: float = config.timeout
        self.on_unavailable: str = config.on_unavailable
        self.local_share: float = config.local_share
        self.client = create_client(
            config.url.get(), connect_timeout=config.connect_timeout, timeout=config.timeout
        )
        self.script = LuaScript(LIMITER_LUA)
        self.health = RedisHealth(
            url=self.url,
            fallback=config.on_unavailable,
            probe=self._probe,
            hub=hub,
            on_recover=self._reset_pool,
        )
        self.dropped = 0  # background writes dropped because too many were pending
        self._tasks: set[asyncio.Task[Any]] = set()
        self._prober: asyncio.Task[None] | None = None
        self._closed = False
        self._store: RedisTokenStore | None = None

    @classmethod
    def from_config(cls, config: Any | None, hub: EventHub | None = None) -> RedisRuntime | None:
        """A runtime for ``config.redis``, or None when no Redis is configured."""
        return None if config is None else cls(config, hub)

    # -- lifetime -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and load the script (bounded by the timeouts); on failure start unavailable.

        Never raises for an unreachable Redis: the agent serves under the fallback meanwhile.
        """
        if self._prober is not None:
            return
        try:
            async with asyncio.timeout(self.config.connect_timeout + 2 * self.timeout):
                await self.client.ping()
                await self.script.load(self.client)
        except (RedisError, OSError, TimeoutError) as exc:
            self.health.failed(exc)
        else:
            _log.info("redis at %s connected", self.url, extra={"dependency": "redis"})
        self._prober = asyncio.create_task(self.health.run(), name="redis:health")

    async def aclose(self) -> None:
        """Stop the probe, let pending writes finish briefly, close the connections."""
        self._closed = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.timeout + 0.5)
        for task in [self._prober, *self._tasks]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._prober = None
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()

    # -- operations ---------------------------------------------------------------------------

    async def run(
        self, op: Callable[[], Awaitable[T]], *, within: float | None = None, blame: bool = True
    ) -> T:
        """Run one Redis operation within ``within`` seconds (default: ``redis.timeout``).

        A Redis failure or timeout marks Redis unavailable and raises ``RedisUnavailable``; the
        caller takes its fallback. With ``blame=False`` (the timeout is the caller's deadline,
        shorter than ``redis.timeout``) running out raises ``TimeoutError`` and says nothing
        about Redis. Cancellation passes through untouched.
        """
        try:
            async with asyncio.timeout(self.timeout if within is None else within):
                return await op()
        except TimeoutError as exc:
            if not blame:
                raise
            self.health.failed(exc)
            raise RedisUnavailable(type(exc).__name__) from None
        except (RedisError, OSError) as exc:
            self.health.failed(exc)
            raise RedisUnavailable(type(exc).__name__) from None

    async def eval(
        self,
        keys: list[str],
        args: list[Any],
        *,
        within: float | None = None,
        blame: bool = True,
    ) -> Any:
        """The limiter script (by SHA) within the timeout; see ``run``."""
        return await self.run(
            lambda: self.script(self.client, keys, args), within=within, blame=blame
        )

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run a write in the background (``observe``/``correct`` are synchronous); bounded."""
        if self._closed or len(self._tasks) >= _MAX_BACKGROUND:
            self.dropped += 1
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(self._quiet(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _quiet(coro: Coroutine[Any, Any, object]) -> None:
        with contextlib.suppress(RedisUnavailable):
            await coro

    # -- health -------------------------------------------------------------------------------

    async def _probe(self) -> None:
        async with asyncio.timeout(self.config.connect_timeout + self.timeout):
            await self.client.ping()

    async def _reset_pool(self) -> None:
        """Drop idle connections made before the outage (each would fail once), reload the
        script (a restarted Redis has none)."""
        await self.client.connection_pool.disconnect(inuse_connections=False)
        async with asyncio.timeout(self.config.connect_timeout + self.timeout):
            await self.script.load(self.client)

    def limiter(self, name: str, **kwargs: Any) -> RedisLimiter:
        """The ``scope: global`` limiter of integration ``name`` (``RedisLimiter`` arguments)."""
        return RedisLimiter(self, integration=name, **kwargs)

    def token_store(self) -> RedisTokenStore:
        """The shared lock and (with ``token_cache_key``) encrypted token cache of this Redis."""
        if self._store is None:
            self._store = RedisTokenStore(self)
        return self._store

    def key(self, *parts: str) -> str:
        """``<prefix>{<first part>}:<rest>``: one hash tag per integration (Redis Cluster)."""
        head, *rest = parts
        return f"{self.prefix}{{{head}}}" + "".join(f":{p}" for p in rest)
