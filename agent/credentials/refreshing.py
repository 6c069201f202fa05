"""The common shape of token providers: fetch a token, cache it, inject ``Authorization``.

A scheme subclasses :class:`RefreshingBearer` and implements ``fetch`` (one round trip to its
token endpoint, returning a :class:`Token` whose value is the whole header value); the cache does
the rest (single flight, refresh ahead of expiry, backoff, state). With a ``shared`` store
(``SharedTokenStore``: Redis) the fetch is fleet-wide: replicas reuse one token and refresh it
under one lock (``shared.py``); ``shared_identity`` names the credential across replicas.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Mapping
from datetime import datetime

from agent.credentials.cache import RefreshingCache, RefreshPolicy, Token
from agent.credentials.endpoint import TokenClient
from agent.credentials.shared import SharedFetch, SharedTokenStore
from agent.events import EventHub

__all__ = ["RefreshingBearer"]


class RefreshingBearer(abc.ABC):
    """Base of the OAuth-style providers: ``Authorization: Bearer <fetched token>``."""

    secret_header: str | None = "authorization"  # noqa: S105 - a header name
    can_refresh = True

    def __init__(
        self,
        *,
        integration: str,
        hub: EventHub | None = None,
        policy: RefreshPolicy | None = None,
        client: TokenClient | None = None,
        shared: SharedTokenStore | None = None,
    ) -> None:
        self.integration = integration
        self.client = client or TokenClient()
        self.shared: SharedFetch | None = None
        fetch = self._fetch_header
        if shared is not None:
            self.shared = fetch = SharedFetch(
                self._fetch_header,
                shared,
                name=self._shared_name,
                integration=integration,
                export_state=self.export_state,
                import_state=self.import_state,
            )
        self.cache: RefreshingCache[str] = RefreshingCache(
            fetch, integration=integration, hub=hub, policy=policy
        )

    @abc.abstractmethod
    async def fetch(self) -> Token[str]:
        """Obtain a new access token (the bare token; ``Bearer`` is added here)."""

    def shared_identity(self) -> str:
        """What makes two replicas' credentials the same one (not secret: it is hashed into a
        key name); subclasses add their endpoint, client and scope."""
        return self.integration

    def export_state(self) -> Mapping[str, str]:
        """Provider state to share with the token (the rotated refresh token)."""
        return {}

    def import_state(self, state: Mapping[str, str]) -> None:
        """Take the state another replica shared (see ``export_state``); most providers have
        none, so by default there is nothing to take."""
        return None

    def _shared_name(self) -> str:
        digest = hashlib.sha256(self.shared_identity().encode()).hexdigest()[:24]
        return f"{type(self).__name__}:{self.integration}:{digest}"

    async def _fetch_header(self) -> Token[str]:
        token = await self.fetch()
        return Token(f"Bearer {token.value}", token.lifetime, token.refresh_in)

    async def start(self) -> None:
        self.client.open()
        await self.cache.start()

    async def apply(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        headers["authorization"] = await self.cache.get()

    def invalidate(self) -> None:
        self.cache.invalidate()

    def state(self) -> str:
        return self.cache.state()

    def expires_at(self) -> datetime | None:
        return self.cache.expires_at()

    async def aclose(self) -> None:
        await self.cache.aclose()
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(integration={self.integration!r}, state={self.state()!r})"
