"""Static credentials: a bearer token, any header with an optional prefix, or HTTP basic auth.

The header value is built once (the hot path only copies one string into a dict). A value that
came from ``${file:}`` is rebuilt when its file changes: a background task stats the file every
``poll_interval`` seconds (see ``files.py``); calls never touch the file system.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from agent.config.files import FileWatcher

__all__ = ["NoCredentials", "StaticHeader", "basic_value"]

_log = logging.getLogger("agent.credentials")


def basic_value(username: str, password: str) -> str:
    """``Basic base64(user:password)`` (RFC 7617)."""
    raw = f"{username}:{password}".encode()
    return f"Basic {base64.b64encode(raw).decode('ascii')}"


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
    """Sets one header to a secret value on every request; re-reads file-backed values.

    ``render`` rebuilds the full header value from the current file contents; ``watch`` lists
    the files to poll. Without them the value never changes.
    """

    can_refresh = False

    def __init__(
        self,
        header: str,
        value: str,
        *,
        render: Callable[[], str] | None = None,
        watch: Sequence[Path] = (),
        integration: str = "",
        poll_interval: float = 1.0,
    ) -> None:
        self.secret_header: str | None = header.lower()
        self._header = header.lower()  # the engine keys request headers by lower-case name
        self._value = value
        self._render = render
        self._name = integration
        self._reload_failed = False
        self._watcher = (
            FileWatcher(watch, self._reload, interval=poll_interval)
            if render is not None and watch
            else None
        )

    @classmethod
    def bearer(cls, token: str) -> StaticHeader:
        return cls("Authorization", f"Bearer {token}")

    @classmethod
    def basic(cls, username: str, password: str) -> StaticHeader:
        return cls("Authorization", basic_value(username, password))

    @property
    def watched_files(self) -> tuple[Path, ...]:
        return self._watcher.paths if self._watcher is not None else ()

    async def start(self) -> None:
        if self._watcher is not None:
            self._watcher.start(self._name or self._header)

    async def apply(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        headers[self._header] = self._value

    def invalidate(self) -> None:
        # Nothing to refresh: a rejected static key stays rejected; the 401 reaches the caller.
        return None

    def state(self) -> str:
        return "static"

    def expires_at(self) -> datetime | None:
        return None

    def reload_now(self) -> bool:
        """Stat the watched files now and reload if they changed (tests; after a 401)."""
        return self._watcher.check() if self._watcher is not None else False

    def _reload(self) -> None:
        assert self._render is not None
        try:
            value = self._render()
            if any(ch in value for ch in "\r\n\0"):
                raise ValueError("the new value holds CR, LF or NUL")
        except (OSError, ValueError) as exc:
            # Mid-rotation a file may be briefly missing or empty: keep the last good value.
            if not self._reload_failed:
                self._reload_failed = True
                _log.warning(
                    "credential file of integration '%s' changed but could not be read (%s); "
                    "keeping the previous value",
                    self._name,
                    exc,
                    extra={"integration": self._name},
                )
            return
        if self._reload_failed:
            self._reload_failed = False
            _log.warning(
                "credential file of integration '%s' is readable again",
                self._name,
                extra={"integration": self._name},
            )
        if value != self._value:
            self._value = value
            self._changed()

    def _changed(self) -> None:
        _log.info(
            "credential of integration '%s' reloaded from its file",
            self._name,
            extra={"integration": self._name},
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._header!r}, '***')"

    async def aclose(self) -> None:
        if self._watcher is not None:
            await self._watcher.aclose()
