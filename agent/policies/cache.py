"""Per-integration response cache for GET/HEAD, and single-flight coalescing.

The agent is a *shared* cache (RFC 9111): one upstream credential serves many callers. So it
stores a response only when the upstream allows a shared cache to: not ``no-store``, not
``private``, not ``no-cache`` (we do not revalidate), no ``Set-Cookie``, no ``Vary: *``. Freshness
is the integration's ``ttl`` capped by ``s-maxage``/``max-age`` minus ``Age``. Statuses are the
heuristically cacheable ones of RFC 9110 15.1 (minus 206, which needs range logic).

Keys never hold credentials: the method, the path with its query, and the values of the request
headers the caller chose to vary on (``Accept``, ``Accept-Language``...). Size is bounded in bytes
with least-recently-used eviction.

``SingleFlight`` runs one upstream request for identical concurrent GETs; the followers get the
same response or the same exception. A follower that is cancelled leaves the leader running; if
the leader is cancelled, a waiting follower takes over and sends the request itself.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from agent.policies.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "CACHEABLE_METHODS",
    "CACHEABLE_STATUS",
    "CacheKey",
    "CachedResponse",
    "ResponseCache",
    "SingleFlight",
    "cache_key",
    "freshness",
    "request_allows_cache",
]

CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
CACHEABLE_STATUS = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
_ENTRY_OVERHEAD = 256  # bytes charged per entry for the key, the object and the dict slot

CacheKey = tuple[str, str, tuple[str, ...]]


def cache_key(method: str, path: str, vary: Iterable[str] = ()) -> CacheKey:
    """``(METHOD, path?query, (vary values...))``; pass header values, never credentials."""
    return (method.upper(), path, tuple(vary))


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored upstream answer."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float
    expires_at: float

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + _ENTRY_OVERHEAD

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at)


def _directives(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.split(","):
        name, _, arg = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = arg.strip().strip('"')
    return out


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    return float(max(0, n))


def request_allows_cache(headers: Mapping[str, str]) -> bool:
    """False when the caller sent ``Cache-Control: no-cache``/``no-store`` (lower-case names)."""
    cc = headers.get("cache-control")
    if not cc:
        return headers.get("pragma", "").lower() != "no-cache"
    d = _directives(cc)
    return "no-cache" not in d and "no-store" not in d and d.get("max-age") != "0"


def freshness(headers: Mapping[str, str], ttl: float) -> float:
    """Seconds a shared cache may serve this response (0 = don't store); lower-case names."""
    if "set-cookie" in headers or headers.get("vary", "").strip() == "*":
        return 0.0
    fresh = ttl
    cc = headers.get("cache-control")
    if cc:
        d = _directives(cc)
        if "no-store" in d or "private" in d or "no-cache" in d:
            return 0.0
        limit = _seconds(d.get("s-maxage")) if "s-maxage" in d else _seconds(d.get("max-age"))
        if limit is not None:
            fresh = min(fresh, limit)
    age = _seconds(headers.get("age"))
    if age is not None:
        fresh -= age
    return max(0.0, fresh)


class ResponseCache:
    """TTL + LRU-by-bytes cache of one integration's GET/HEAD responses."""

    def __init__(
        self,
        *,
        ttl: float,
        max_bytes: int = 16 * 1024 * 1024,
        cacheable_status: Iterable[int] = CACHEABLE_STATUS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if ttl < 0 or max_bytes <= 0:
            raise ValueError("ttl must be >= 0 and max_bytes > 0")
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._status = frozenset(cacheable_status)
        self._clock = clock
        self._entries: OrderedDict[CacheKey, CachedResponse] = OrderedDict()
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> CachedResponse | None:
        """The fresh entry for ``key`` (now most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock.now() >= entry.expires_at:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(
        self, key: CacheKey, status: int, headers: Mapping[str, str], body: bytes
    ) -> CachedResponse | None:
        """Store a response if its method, status and Cache-Control allow; returns the entry.
        ``headers`` are the response's, with lower-case names."""
        if self.ttl <= 0 or key[0] not in CACHEABLE_METHODS or status not in self._status:
            return None
        fresh = freshness(headers, self.ttl)
        if fresh <= 0:
            return None
        now = self._clock.now()
        entry = CachedResponse(status, tuple(headers.items()), body, now, now + fresh)
        size = entry.size
        if size > self.max_bytes:
            return None
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        self._bytes += size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return entry

    def invalidate(self, key: CacheKey) -> None:
        if key in self._entries:
            self._drop(key)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: CacheKey) -> None:
        self._bytes -= self._entries.pop(key).size


T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Coalesce concurrent calls with the same key into one."""

    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Future[T]] = {}

    def in_flight(self, key: Hashable) -> bool:
        return key in self._calls

    async def do(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``fn`` once for all concurrent callers of ``key``; returns ``(result, shared)``
        where ``shared`` is True for followers (``CallMeta`` may report it as a cache hit)."""
        while True:
            fut = self._calls.get(key)
            if fut is None:
                return await self._lead(key, fn), False
            try:
                return await asyncio.shield(fut), True
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if fut.cancelled() and (task is None or not task.cancelling()):
                    continue  # the leader was cancelled, not us: take over
                raise

    async def _lead(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls[key] = fut
        try:
            result = await fn()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: no "never retrieved" log when nobody followed
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            if self._calls.get(key) is fut:
                del self._calls[key]
