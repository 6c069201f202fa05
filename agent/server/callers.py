"""Caller identity: bearer tokens from gRPC metadata, compared in constant time.

With no ``callers`` configured every call is anonymous (caller ``""``) and may use every
integration: that suits a sidecar reached over a Unix socket. With callers configured, each
call must carry ``authorization: Bearer <token>`` of a known caller, and may use only the
integrations in its ``allow`` list.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.config.files import FileWatcher, read_secret, secret_files
from agent.errors import CallerNotAllowed, CallerUnauthenticated

__all__ = ["Caller", "CallerAuthenticator"]

_log = logging.getLogger("agent.server")


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller and the integrations it may use (``None`` = all)."""

    name: str
    allowed: frozenset[str] | None


_ANONYMOUS = Caller(name="", allowed=None)


class CallerAuthenticator:
    """Maps the ``authorization`` metadata of a call to a :class:`Caller`.

    Tokens from ``${file:}`` are re-read when their file changes (a Kubernetes Secret update):
    one ``stat`` per file per second in the background, never a read per call.
    """

    def __init__(self, callers: Sequence[Any], *, poll_interval: float = 1.0) -> None:
        self._callers = tuple(callers)
        self._entries: tuple[tuple[bytes, Caller], ...] = tuple(
            (c.token.get().encode(), _caller(c)) for c in self._callers
        )
        paths = sorted({p for c in self._callers for p in secret_files(c.token)})
        self._watcher = FileWatcher(paths, self._reload, interval=poll_interval)

    def start(self) -> None:
        """Begin watching the token files (needs the running loop)."""
        self._watcher.start("callers")

    async def aclose(self) -> None:
        await self._watcher.aclose()

    def _reload(self) -> None:
        try:
            entries = tuple((read_secret(c.token).encode(), _caller(c)) for c in self._callers)
        except (OSError, ValueError) as exc:  # mid-rotation: keep the tokens we have
            _log.warning("caller tokens not reloaded, keeping the current ones (%s)", exc)
            return
        self._entries = entries
        _log.info("caller tokens reloaded", extra={"callers": len(entries)})

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Caller:
        """Return the caller, or raise CallerUnauthenticated (never echoing the token)."""
        if not self._entries:
            return _ANONYMOUS
        token = _bearer(metadata)
        if token is None:
            raise CallerUnauthenticated(
                "this agent requires caller authentication: send gRPC metadata "
                "'authorization: Bearer <token>' with your caller token"
            )
        presented = token.encode()
        found: Caller | None = None
        for expected, caller in self._entries:  # no early exit: the time taken reveals nothing
            if hmac.compare_digest(presented, expected):
                found = caller
        if found is None:
            raise CallerUnauthenticated(
                "the caller token sent in 'authorization' is not known to this agent; "
                "check the token your app is configured with"
            )
        return found

    @staticmethod
    def authorize(caller: Caller, integration: str) -> None:
        """Raise CallerNotAllowed unless ``caller`` may use ``integration``."""
        if caller.allowed is not None and integration not in caller.allowed:
            raise CallerNotAllowed(
                f"caller '{caller.name}' may not use integration {integration[:100]!r}; "
                "add it to the caller's `allow` list in the agent config",
                integration=integration,
            )


def _caller(config: Any) -> Caller:
    return Caller(config.name, None if "*" in config.allow else frozenset(config.allow))


def _bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None
