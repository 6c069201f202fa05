"""``RedisTokenStore``: the ``SharedTokenStore`` of ``agent.credentials`` on Redis.

- **Lock**: ``SET <key>:lock <random> NX PX <ttl>``, released by a compare-and-delete script
  (redis-py's ``Lock``), so a replica that dies while refreshing frees it when the TTL runs out.
  Waiting for it checks every 50 ms, only while another replica is refreshing (rare).
- **Cache**: the token (and the provider's state, e.g. the rotated refresh token) as JSON sealed
  with AES-GCM: a 256-bit key derived with HKDF-SHA256 from ``redis.token_cache_key``, a random
  96-bit nonce per write, and the Redis key name as associated data (a record copied under
  another key does not open). The key expires with the token. A record that does not open (a
  replica with another key) reads as absent, with one warning.
- Without ``token_cache_key`` nothing is cached: only the lock is shared.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis.exceptions import LockError, RedisError

from agent.credentials import SharedLockBusy, SharedStoreUnavailable, SharedToken
from agent.redis.client import RedisUnavailable

if TYPE_CHECKING:
    from agent.redis.runtime import RedisRuntime

__all__ = ["RedisTokenStore", "derive_key"]

_log = logging.getLogger("agent.redis")

_VERSION = b"k1"
_LOCK_TTL = 30.0  # longer than a token request may take (TokenClient: 10 s) with room to spare
_LOCK_WAIT = 15.0
_LOCK_POLL = 0.05


def derive_key(secret: str) -> bytes:
    """The AES-256-GCM key of a configured ``token_cache_key`` (HKDF-SHA256)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"kilo-agent token cache v1"
    ).derive(secret.encode())


class RedisTokenStore:
    """Shared refresh lock and (with a key) encrypted token cache; see the module docstring."""

    def __init__(
        self,
        runtime: RedisRuntime,
        *,
        lock_ttl: float = _LOCK_TTL,
        lock_wait: float = _LOCK_WAIT,
    ) -> None:
        self._runtime = runtime
        secret = runtime.config.token_cache_key
        self._aead = AESGCM(derive_key(secret.get())) if secret is not None else None
        self._lock_ttl = lock_ttl
        self._lock_wait = lock_wait
        self._warned_unreadable = False

    @property
    def holds_tokens(self) -> bool:
        return self._aead is not None

    def _key(self, name: str) -> str:
        return self._runtime.key(f"cred:{name}")

    async def _run(self, op: Any) -> Any:
        if not self._runtime.health.available:
            raise SharedStoreUnavailable("redis is unreachable")
        try:
            return await self._runtime.run(op)
        except RedisUnavailable as exc:
            raise SharedStoreUnavailable(str(exc)) from None

    async def load(self, name: str) -> SharedToken | None:
        if self._aead is None:
            return None
        key = self._key(name)
        blob = await self._run(lambda: self._runtime.client.get(key))
        if not blob:
            return None
        try:
            data = json.loads(self._open(blob, key))
            return SharedToken(data["v"], data.get("e"), dict(data.get("s") or {}))
        except (InvalidTag, ValueError, KeyError, TypeError):
            if not self._warned_unreadable:
                self._warned_unreadable = True
                _log.warning(
                    "a token cached in redis could not be decrypted (another agent uses a "
                    "different redis.token_cache_key?); refreshing instead",
                    extra={"dependency": "redis"},
                )
            return None

    async def save(self, name: str, token: SharedToken) -> None:
        if self._aead is None:
            return
        key = self._key(name)
        payload = json.dumps({"v": token.value, "e": token.expires_at, "s": dict(token.state)})
        blob = self._seal(payload.encode(), key)
        ttl_ms = 3_600_000  # unknown lifetime: an hour, then refreshed
        if token.expires_at is not None:
            ttl_ms = max(1, int((token.expires_at - self._runtime.clock.wall()) * 1000))
        await self._run(lambda: self._runtime.client.set(key, blob, px=ttl_ms))

    @asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        """The fleet-wide refresh lock; see ``SharedTokenStore.lock``."""
        client = self._runtime.client
        lock = client.lock(
            self._key(name) + ":lock",
            timeout=self._lock_ttl,
            sleep=_LOCK_POLL,
            blocking=True,
            blocking_timeout=self._lock_wait,
            raise_on_release_error=False,
        )
        if not self._runtime.health.available:
            raise SharedStoreUnavailable("redis is unreachable")
        try:
            # Each attempt is bounded by redis.timeout (socket timeout); the wait by lock_wait.
            async with asyncio.timeout(self._lock_wait + self._runtime.timeout):
                acquired = await lock.acquire()
        except (RedisError, OSError, TimeoutError) as exc:
            if isinstance(exc, LockError | TimeoutError) and self._runtime.health.available:
                raise SharedLockBusy(name) from None
            self._runtime.health.failed(exc)
            raise SharedStoreUnavailable(type(exc).__name__) from None
        if not acquired:
            raise SharedLockBusy(name)
        try:
            yield
        finally:
            try:
                async with asyncio.timeout(self._runtime.timeout):
                    await lock.release()
            except (RedisError, OSError, TimeoutError):
                pass  # it expires by itself

    def _seal(self, data: bytes, key: str) -> bytes:
        assert self._aead is not None
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, data, key.encode())

    def _open(self, blob: bytes, key: str) -> bytes:
        assert self._aead is not None
        if not blob.startswith(_VERSION) or len(blob) < len(_VERSION) + 12 + 16:
            raise ValueError("not a sealed token record")
        nonce = blob[len(_VERSION) : len(_VERSION) + 12]
        return self._aead.decrypt(nonce, blob[len(_VERSION) + 12 :], key.encode())
