"""The single-flight refreshing cache every token-based provider sits on.

One cache holds one integration's credential (a token, or AWS keys) and the schedule around it:

- **Refresh ahead of expiry**: a token of lifetime ``L`` is refreshed when ``min(margin,
  margin_ratio * L)`` (plus a random share ``jitter`` of that, so replicas spread out) is left.
  Until then, and while the refresh runs, calls keep using the current token.
- **Single flight**: at most one fetch runs at a time, however many calls wait; callers share it
  through ``asyncio.shield`` so a cancelled call never cancels the fetch the others wait for.
- **Failures** are retried by the background task with exponential backoff (``equal jitter``:
  half fixed, half random, so a retry never fires at once after a failure). While no valid token
  exists, calls fail fast with :class:`CredentialsUnavailable` carrying the last reason.
- **Rejection** (an upstream 401): ``invalidate`` drops the token the rejected call used -- not a
  newer one that another call already fetched -- so a burst of 401s costs one refresh. A token
  that was itself fetched after a 401 and is rejected again within ``reject_cooldown`` is not
  refreshed again (the credential is wrong, not stale: re-fetching would only hammer the issuer).
- **State** changes (pending, valid, degraded, failed) are logged once as warnings naming the
  integration and published as events; individual calls never log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from agent.errors import CredentialsUnavailable
from agent.events import CredentialRefreshed, CredentialStateChanged, EventHub

__all__ = ["RefreshFailed", "RefreshPolicy", "RefreshingCache", "Token"]

_log = logging.getLogger("agent.credentials")

T = TypeVar("T")

#: (cache, generation) of the credential the current task applied last; lets ``invalidate`` know
#: which token the rejected request carried without widening the provider interface.
_APPLIED: ContextVar[tuple[object, int] | None] = ContextVar(
    "kilo_applied_credential", default=None
)


@dataclass(frozen=True, slots=True)
class Token(Generic[T]):
    """What a fetch returns: the credential and how long it lives."""

    value: T = field(repr=False)
    lifetime: float | None  # seconds from now; None = unknown (kept until rejected)
    refresh_in: float | None = None  # the issuer's own hint (Azure AD ``refresh_in``)


class RefreshFailed(Exception):
    """A fetch failed; ``reason`` is shown to operators and callers, so it never holds a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """When to refresh and how to retry; defaults suit hour-long tokens, tests shrink them."""

    margin: float = 300.0  # refresh at most this long before expiry ...
    margin_ratio: float = 0.2  # ... or when this share of the lifetime is left, if smaller
    jitter: float = 0.5  # refresh up to this much of the margin earlier still, at random
    skew: float = 30.0  # a token counts as expired this long before its expiry (at most ...)
    skew_ratio: float = 0.05  # ... this share of its lifetime)
    backoff_base: float = 1.0  # seconds before the first retry of a failed refresh
    backoff_cap: float = 60.0
    reject_cooldown: float = 10.0  # a token fetched after a 401 is not re-fetched on a 401 within


@dataclass(slots=True)
class _Entry(Generic[T]):
    value: T = field(repr=False)
    generation: int
    obtained: float  # monotonic
    expires: float | None  # monotonic; past it (minus skew) the token is not used
    usable_until: float | None
    refresh_at: float | None
    expires_at: datetime | None  # wall clock, for status and events
    after_rejection: bool
    rejected: bool = False


class RefreshingCache(Generic[T]):
    """Holds one credential and keeps it fresh; see the module docstring for the semantics."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Token[T]]],
        *,
        integration: str,
        hub: EventHub | None = None,
        policy: RefreshPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._fetch = fetch
        self._name = integration
        self._hub = hub
        self._policy = policy or RefreshPolicy()
        self._clock = clock
        self._rand = rand
        self._entry: _Entry[T] | None = None
        self._generation = 0
        self._inflight: asyncio.Task[_Entry[T] | None] | None = None
        self._next_after_rejection = False
        self._trigger = "start"
        self._failure = ""
        self._failures = 0
        self._retry_at: float | None = None
        self._health = "pending"
        self._runner: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False
        self._warned_rejection = -1

    # -- lifetime --------------------------------------------------------------------------

    async def start(self) -> None:
        """Fetch the first token in the background and keep it fresh until ``aclose``."""
        if self._runner is None and not self._closed:
            self._wake = asyncio.Event()
            self._kick("start")
            self._runner = asyncio.create_task(self._run(), name=f"credentials:{self._name}")

    async def aclose(self, *, grace: float = 5.0) -> None:
        """Stop the background task; let a fetch in flight finish (up to ``grace`` seconds).

        A fetch already sent may have rotated a refresh token at the issuer: cancelling it would
        lose the only valid one, so it gets a moment to land (and be saved) first.
        """
        self._closed = True
        if self._inflight is not None and not self._inflight.done():
            await asyncio.wait({self._inflight}, timeout=grace)
        for task in (self._runner, self._inflight):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._runner = self._inflight = None

    # -- the hot path ----------------------------------------------------------------------

    async def get(self) -> T:
        """The current credential; waits for a fetch only when no valid one exists."""
        now = self._clock()
        entry = self._entry
        if entry is not None and self._usable(entry, now):
            if entry.refresh_at is not None and now >= entry.refresh_at and self._inflight is None:
                self._kick("scheduled")  # the background task is late (or not started)
            _APPLIED.set((self, entry.generation))
            return entry.value
        task = self._inflight
        if task is None:
            if self._retry_at is not None and now < self._retry_at:
                raise self._unavailable(now)  # fail fast while backing off
            task = self._kick("expired" if entry is not None else self._trigger)
        fresh = await asyncio.shield(task)
        if fresh is None:
            raise self._unavailable(self._clock())
        _APPLIED.set((self, fresh.generation))
        return fresh.value

    def invalidate(self) -> None:
        """The upstream rejected the credential this task applied: refresh it (once)."""
        entry = self._entry
        applied = _APPLIED.get()
        if entry is None or entry.rejected:
            return  # already being replaced
        if applied is not None and applied[0] is self and applied[1] != entry.generation:
            return  # the call carried an older token; a newer one is already here
        if entry.after_rejection and self._clock() - entry.obtained < self._policy.reject_cooldown:
            if self._warned_rejection != entry.generation:
                self._warned_rejection = entry.generation
                _log.warning(
                    "credential of integration '%s' was rejected (401) again right after a "
                    "refresh caused by a 401: the credential itself is refused (check its "
                    "permissions or scope); not refreshing again for %.0fs",
                    self._name,
                    self._policy.reject_cooldown,
                    extra={"integration": self._name},
                )
            return
        entry.rejected = True
        self._next_after_rejection = True
        if self._inflight is None:
            self._kick("rejected")

    # -- status ----------------------------------------------------------------------------

    def state(self) -> str:
        """``valid``, ``refreshing`` or ``failed: <reason>`` for ListIntegrations."""
        if self._inflight is not None:
            return "refreshing"
        entry = self._entry
        if entry is not None and self._usable(entry, self._clock()):
            return "valid"
        if self._failure:
            return f"failed: {self._failure}"
        return "refreshing"  # nothing failed: the next call (or the background task) fetches one

    def expires_at(self) -> datetime | None:
        entry = self._entry
        return entry.expires_at if entry is not None and not entry.rejected else None

    def __repr__(self) -> str:
        return f"RefreshingCache(integration={self._name!r}, state={self.state()!r})"

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _usable(entry: _Entry[Any], now: float) -> bool:
        return not entry.rejected and (entry.usable_until is None or now < entry.usable_until)

    def _kick(self, trigger: str) -> asyncio.Task[_Entry[T] | None]:
        """Start a fetch unless one runs; return the one that runs."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(
                self._refresh(trigger), name=f"credentials:{self._name}:refresh"
            )
            self._poke()
        return self._inflight

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _refresh(self, trigger: str) -> _Entry[T] | None:
        started = self._clock()
        after_rejection, self._next_after_rejection = self._next_after_rejection, False
        try:
            token = await self._fetch()
        except RefreshFailed as exc:
            self._failed(exc.reason, trigger, started)
            return None
        except Exception as exc:  # a bug or a library surprise: report its type, never its text
            self._failed(f"unexpected {type(exc).__name__} while fetching", trigger, started)
            return None
        else:
            return self._succeeded(token, trigger, started, after_rejection)
        finally:
            if self._inflight is asyncio.current_task():
                self._inflight = None
            self._poke()

    def _succeeded(
        self, token: Token[T], trigger: str, started: float, after_rejection: bool
    ) -> _Entry[T]:
        now = self._clock()
        policy = self._policy
        expires = usable_until = refresh_at = None
        expires_at = None
        if token.lifetime is not None:
            lifetime = max(0.0, token.lifetime)
            expires = now + lifetime
            usable_until = expires - min(policy.skew, policy.skew_ratio * lifetime)
            early = min(policy.margin, policy.margin_ratio * lifetime)
            refresh_at = expires - early - self._rand() * policy.jitter * early
            if token.refresh_in is not None:
                refresh_at = min(refresh_at, now + max(0.0, token.refresh_in))
            expires_at = datetime.fromtimestamp(time.time() + lifetime, UTC)
        self._generation += 1
        entry = _Entry(
            token.value,
            self._generation,
            now,
            expires,
            usable_until,
            refresh_at,
            expires_at,
            after_rejection,
        )
        self._entry = entry
        self._failure, self._failures, self._retry_at, self._trigger = "", 0, None, "scheduled"
        self._publish(CredentialRefreshed(self._name, True, expires_at, "", trigger, now - started))
        self._transition("valid", "")
        return entry

    def _failed(self, reason: str, trigger: str, started: float) -> None:
        now = self._clock()
        policy = self._policy
        self._failures += 1
        ceiling = min(policy.backoff_cap, policy.backoff_base * 2 ** (self._failures - 1))
        self._retry_at = now + ceiling * (0.5 + 0.5 * self._rand())
        self._failure = reason
        self._trigger = "retry"
        self._publish(CredentialRefreshed(self._name, False, None, reason, trigger, now - started))
        entry = self._entry
        still_valid = entry is not None and self._usable(entry, now)
        self._transition("degraded" if still_valid else "failed", reason)

    def _transition(self, new: str, reason: str) -> None:
        old = self._health
        if new == old:
            return  # logged when entered: a state is reported once, not per retry or per call
        self._health = new
        self._publish(CredentialStateChanged(self._name, old, new, reason))
        if old == "pending" and new == "valid":
            _log.info("credential of integration '%s' obtained", self._name)
        elif new == "valid":
            _log.warning(
                "credential of integration '%s' recovered: refreshing works again",
                self._name,
                extra={"integration": self._name, "credential_state": new},
            )
        elif new == "degraded":
            _log.warning(
                "credential of integration '%s' could not be refreshed (%s); the current one is "
                "still valid and used until it expires, retrying with backoff",
                self._name,
                reason,
                extra={"integration": self._name, "credential_state": new},
            )
        else:
            _log.warning(
                "credential of integration '%s' unavailable (%s); calls fail with "
                "CREDENTIALS_UNAVAILABLE until a refresh succeeds, retrying with backoff",
                self._name,
                reason,
                extra={"integration": self._name, "credential_state": new},
            )

    def _unavailable(self, now: float) -> CredentialsUnavailable:
        reason = self._failure or "the credential expired and could not be refreshed"
        retry = ""
        if self._retry_at is not None:
            retry = f"; next attempt in {max(0.0, self._retry_at - now):.1f}s"
        return CredentialsUnavailable(
            f"integration '{self._name}' has no valid credential: {reason}{retry}. Check its "
            "`auth` settings and that the token endpoint is reachable",
            integration=self._name,
        )

    def _publish(self, event: object) -> None:
        if self._hub is not None:
            self._hub.publish(event)

    def _next_due(self) -> float | None:
        """When the background task should act next (monotonic), or None to sleep until poked."""
        if self._inflight is not None:
            return None
        if self._retry_at is not None:
            return self._retry_at
        entry = self._entry
        if entry is None or entry.rejected:
            return self._clock()
        return entry.refresh_at

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            wake.clear()
            due = self._next_due()
            if due is None:
                await wake.wait()
                continue
            delay = due - self._clock()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await wake.wait()
                continue
            self._kick(self._trigger if self._retry_at is not None else "scheduled")
