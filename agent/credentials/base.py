"""The one interface every credential provider implements (static now; refreshing ones later).

Shaped after httpx's auth flow: the engine asks the provider to ``apply`` itself to an outgoing
request (add a header, or sign it), and tells it when the upstream rejected the credential
(``invalidate``) so a refreshing provider can fetch a new one and the engine can retry once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

__all__ = ["CredentialProvider"]


class CredentialProvider(Protocol):
    """Obtains, caches and injects one integration's credential."""

    #: Lower-case name of the header this provider sets (callers may not send it), or None.
    secret_header: str | None
    #: True when ``invalidate`` can lead to a different credential (so a 401 is worth one retry).
    can_refresh: bool

    async def start(self) -> None:
        """Begin background work (file watching, refresh ahead of expiry); called at start-up."""

    async def apply(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        """Add the credential to ``headers`` (or sign the request); may await a refresh."""

    def invalidate(self) -> None:
        """The upstream rejected the credential (401): drop it so the next ``apply`` refreshes."""

    def state(self) -> str:
        """``static``, ``valid``, ``refreshing`` or ``failed: <reason>`` (never the secret)."""

    def expires_at(self) -> datetime | None:
        """When the current credential expires; None for static credentials."""

    async def aclose(self) -> None:
        """Stop background refresh work."""
