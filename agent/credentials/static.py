"""Static credentials: a bearer token, any header with an optional prefix, or HTTP basic auth.

The header value is built once at start-up (the hot path only copies one string into a dict).
"""

from __future__ import annotations

import base64
from datetime import datetime

__all__ = ["NoCredentials", "StaticHeader"]


class NoCredentials:
    """For integrations that need none (or whose URL is the secret, like webhooks)."""

    secret_header: str | None = None
    can_refresh = False

    async def start(self) -> None:
        return None

    async def apply(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        return None

    def invalidate(self) -> None:
        return None

    def state(self) -> str:
        return "none"

    def expires_at(self) -> datetime | None:
        return None

    async def aclose(self) -> None:
        return None


class StaticHeader:
    """Sets one header to a fixed secret value on every request."""

    def __init__(self, header: str, value: str) -> None:
        self.secret_header: str | None = header.lower()
        self._header = header.lower()  # the engine keys request headers by lower-case name
        self._value = value
        self.can_refresh = False

    async def start(self) -> None:
        return None

    @classmethod
    def bearer(cls, token: str) -> StaticHeader:
        return cls("Authorization", f"Bearer {token}")

    @classmethod
    def basic(cls, username: str, password: str) -> StaticHeader:
        raw = f"{username}:{password}".encode()
        return cls("Authorization", f"Basic {base64.b64encode(raw).decode('ascii')}")

    async def apply(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        headers[self._header] = self._value

    def invalidate(self) -> None:
        # Nothing to refresh: a rejected static key stays rejected; the 401 reaches the caller.
        return None

    def state(self) -> str:
        return "static"

    def expires_at(self) -> datetime | None:
        return None

    def __repr__(self) -> str:
        return f"StaticHeader({self._header!r}, '***')"

    async def aclose(self) -> None:
        return None
