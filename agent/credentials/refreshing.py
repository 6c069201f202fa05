"""The common shape of token providers: fetch a token, cache it, inject ``Authorization``.

A scheme subclasses :class:`RefreshingBearer` and implements ``fetch`` (one round trip to its
token endpoint, returning a :class:`Token` whose value is the whole header value); the cache does
the rest (single flight, refresh ahead of expiry, backoff, state).
"""

from __future__ import annotations

from datetime import datetime

from agent.credentials.cache import RefreshingCache, RefreshPolicy, Token
from agent.credentials.endpoint import TokenClient
from agent.events import EventHub

__all__ = ["RefreshingBearer"]


class RefreshingBearer:
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
    ) -> None:
        self.integration = integration
        self.client = client or TokenClient()
        self.cache: RefreshingCache[str] = RefreshingCache(
            self._fetch_header, integration=integration, hub=hub, policy=policy
        )

    async def fetch(self) -> Token[str]:
        """Obtain a new access token (the bare token; ``Bearer`` is added here)."""
        raise NotImplementedError

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
