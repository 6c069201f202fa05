"""One refresh for the whole fleet: a lock and a token cache shared by every agent replica.

``SharedTokenStore`` is the small interface a shared store implements (``agent.redis`` has the
Redis one; credentials never import it). ``SharedFetch`` wraps a provider's ``fetch`` so that:

1. a token another replica already cached (newer than the one this agent holds) is reused;
2. otherwise the refresh runs under the store's lock, re-checking the cache once the lock is
   held (the replica that held it has probably just refreshed), and the new token -- with the
   provider's rotated refresh token -- is cached for the others;
3. the newest refresh token always comes from the store before a refresh, so RFC 9700 rotation
   (the old refresh token dies at first use) never breaks across replicas.

Without token caching (no encryption key configured) only the lock is shared. When the store is
unreachable the agent refreshes on its own, as a single agent would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from agent.credentials.cache import RefreshFailed, Token

__all__ = [
    "SharedFetch",
    "SharedLockBusy",
    "SharedStoreUnavailable",
    "SharedToken",
    "SharedTokenStore",
]

_log = logging.getLogger("agent.credentials")

#: A cached token with less than this left is not worth adopting (refresh instead).
_MIN_REMAINING = 1.0


class SharedStoreUnavailable(Exception):
    """The shared store could not be reached."""


class SharedLockBusy(Exception):
    """Another replica held the refresh lock for longer than the wait."""


@dataclass(frozen=True, slots=True)
class SharedToken:
    """A token as replicas share it: the injected value, its wall-clock expiry, and the
    provider's own state (e.g. the newest refresh token)."""

    value: str = field(repr=False)
    expires_at: float | None  # Unix time; None = unknown
    state: Mapping[str, str] = field(default_factory=dict, repr=False)


class SharedTokenStore(Protocol):
    """Where replicas share a credential. ``name`` identifies one credential fleet-wide."""

    @property
    def holds_tokens(self) -> bool:
        """Whether tokens are cached (else only the lock is shared)."""
        ...

    async def load(self, name: str) -> SharedToken | None:
        """The cached token, or None; raises ``SharedStoreUnavailable``."""
        ...

    async def save(self, name: str, token: SharedToken) -> None:
        """Cache ``token`` until it expires; raises ``SharedStoreUnavailable``."""
        ...

    def lock(self, name: str) -> AbstractAsyncContextManager[None]:
        """Hold the fleet-wide refresh lock of ``name``; raises ``SharedStoreUnavailable`` or
        ``SharedLockBusy``. Releasing never raises (the lock expires by itself)."""
        ...


class SharedFetch:
    """``fetch`` made fleet-wide through ``store`` (see the module docstring).

    ``export_state``/``import_state`` move the provider's own state (the rotated refresh token)
    in and out of the shared record.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Token[str]]],
        store: SharedTokenStore,
        *,
        name: str | Callable[[], str],
        integration: str,
        export_state: Callable[[], Mapping[str, str]] = dict,
        import_state: Callable[[Mapping[str, str]], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._store = store
        self._naming = name  # may be a callable: providers know their identity after __init__
        self._resolved = name if isinstance(name, str) else ""
        self._integration = integration
        self._export = export_state
        self._import = import_state
        self._wall = wall
        self._held: str | None = None  # the value this agent uses now
        self.adopted = 0  # tokens taken from another replica (tests, status)
        self.fetched = 0

    @property
    def holds_tokens(self) -> bool:
        """Whether the store shares tokens (and refresh tokens), not just the lock."""
        return self._store.holds_tokens

    @property
    def _name(self) -> str:
        if not self._resolved:
            naming = self._naming
            self._resolved = naming if isinstance(naming, str) else naming()
        return self._resolved

    async def __call__(self) -> Token[str]:
        store = self._store
        token: Token[str] | None = None
        try:
            if store.holds_tokens:
                cached = await store.load(self._name)
                if self._usable(cached):
                    assert cached is not None
                    return self._adopt(cached)
            async with store.lock(self._name):
                cached = await store.load(self._name) if store.holds_tokens else None
                if self._usable(cached):
                    assert cached is not None
                    return self._adopt(cached)
                if cached is not None and self._import is not None:
                    self._import(cached.state)  # the newest refresh token, before using one
                token = await self._own_fetch()
                if store.holds_tokens:
                    await self._save(token)
                return token
        except SharedLockBusy:
            if token is not None:
                return token
            # Refreshing beside the holder could reuse a rotated refresh token: back off.
            raise RefreshFailed(
                f"another replica holds the refresh lock of integration '{self._integration}' "
                "and has not finished; retrying"
            ) from None
        except SharedStoreUnavailable:
            if token is not None:
                return token
            return await self._own_fetch()  # on our own, as a single agent would

    async def _own_fetch(self) -> Token[str]:
        token = await self._fetch()
        self.fetched += 1
        self._held = token.value
        return token

    async def _save(self, token: Token[str]) -> None:
        expires = None if token.lifetime is None else self._wall() + token.lifetime
        try:
            await self._store.save(self._name, SharedToken(token.value, expires, self._export()))
        except SharedStoreUnavailable:
            _log.warning(
                "could not share the new credential of integration '%s' (the shared store is "
                "unreachable): other replicas refresh their own",
                self._integration,
                extra={"integration": self._integration},
            )

    def _usable(self, cached: SharedToken | None) -> bool:
        if cached is None or cached.value == self._held:
            return False  # nothing cached, or the very token this agent wants replaced
        return cached.expires_at is None or cached.expires_at - self._wall() > _MIN_REMAINING

    def _adopt(self, cached: SharedToken) -> Token[str]:
        self.adopted += 1
        self._held = cached.value
        if self._import is not None:
            self._import(cached.state)
        lifetime = None if cached.expires_at is None else cached.expires_at - self._wall()
        return Token(cached.value, lifetime)
