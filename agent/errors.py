"""The agent's typed errors: one class per reason code of SPEC.md's error table.

Hierarchy (the server maps each to a gRPC status in exactly one place, ``server/status.py``)::

    AgentError                      base; carries ``reason`` (ErrorInfo.reason) and a safe message
    ├── UnknownIntegration          NOT_FOUND            UNKNOWN_INTEGRATION
    ├── InvalidRequest              INVALID_ARGUMENT     INVALID_REQUEST  (+ field violations)
    ├── BodyTooLarge                INVALID_ARGUMENT     BODY_TOO_LARGE
    ├── CallerNotAllowed            PERMISSION_DENIED    CALLER_NOT_ALLOWED
    ├── PathNotAllowed              PERMISSION_DENIED    PATH_NOT_ALLOWED
    ├── CallerUnauthenticated       UNAUTHENTICATED      CALLER_UNAUTHENTICATED
    ├── RateLimited                 RESOURCE_EXHAUSTED   RATE_LIMITED     (+ retry_after)
    │   └── RateLimiterUnavailable  UNAVAILABLE          RATE_LIMITER_UNAVAILABLE (+ retry_after)
    ├── CircuitOpen                 UNAVAILABLE          CIRCUIT_OPEN     (+ retry_after)
    ├── UpstreamUnreachable         UNAVAILABLE          UPSTREAM_UNREACHABLE
    ├── CredentialsUnavailable      UNAVAILABLE          CREDENTIALS_UNAVAILABLE
    ├── ShuttingDown                UNAVAILABLE          SHUTTING_DOWN
    └── UpstreamTimeout             DEADLINE_EXCEEDED    UPSTREAM_TIMEOUT

    ConfigError                     a configuration that cannot be loaded; lists every problem

Messages must say what was wrong and what to change, and must never contain a secret: they are
returned to callers and written to logs as they stand. Nothing here imports gRPC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "AgentError",
    "BodyTooLarge",
    "CallerNotAllowed",
    "CallerUnauthenticated",
    "CircuitOpen",
    "ConfigError",
    "ConfigProblem",
    "CredentialsUnavailable",
    "FieldViolation",
    "InvalidRequest",
    "PathNotAllowed",
    "RateLimited",
    "RateLimiterUnavailable",
    "ShuttingDown",
    "UnknownIntegration",
    "UpstreamTimeout",
    "UpstreamUnreachable",
]


class AgentError(Exception):
    """A decision of the agent that ends a call with a gRPC error instead of an upstream answer."""

    reason: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, *, integration: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.integration = integration

    def metadata(self) -> dict[str, str]:
        """Extra ``ErrorInfo.metadata`` entries (never secrets)."""
        return {"integration": self.integration} if self.integration else {}


class UnknownIntegration(AgentError):
    """The request names an integration that is not configured."""

    reason = "UNKNOWN_INTEGRATION"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request, as ``google.rpc.BadRequest.FieldViolation`` reports it."""

    field: str
    description: str


class InvalidRequest(AgentError):
    """The request is malformed or unsafe: bad method, escaping path, forbidden header..."""

    reason = "INVALID_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        integration: str = "",
    ) -> None:
        super().__init__(message, integration=integration)
        self.violations = tuple(violations)


class BodyTooLarge(AgentError):
    """The request body is larger than the integration's ``max_body``."""

    reason = "BODY_TOO_LARGE"


class CallerNotAllowed(AgentError):
    """The authenticated caller may not use this integration."""

    reason = "CALLER_NOT_ALLOWED"


class PathNotAllowed(AgentError):
    """The path is outside the integration's ``allow_paths``."""

    reason = "PATH_NOT_ALLOWED"


class CallerUnauthenticated(AgentError):
    """Callers are configured and the call carried no token, or an unknown one."""

    reason = "CALLER_UNAUTHENTICATED"


class _RetryableAfter(AgentError):
    """An error that tells the caller when trying again may succeed (``google.rpc.RetryInfo``)."""

    def __init__(self, message: str, *, retry_after: float, integration: str = "") -> None:
        super().__init__(message, integration=integration)
        self.retry_after = max(0.0, retry_after)


class RateLimited(_RetryableAfter):
    """The call could not start within ``max_wait`` or its deadline."""

    reason = "RATE_LIMITED"


class RateLimiterUnavailable(RateLimited):
    """A ``scope: global`` limit cannot be checked: Redis is unreachable and ``redis.
    on_unavailable`` is ``deny``. A RateLimited (the engine moves on to fallbacks alike) with its
    own reason; the server maps it to UNAVAILABLE, since trying another replica later may work."""

    reason = "RATE_LIMITER_UNAVAILABLE"


class CircuitOpen(_RetryableAfter):
    """The integration's breaker is open and no fallback answered."""

    reason = "CIRCUIT_OPEN"


class UpstreamUnreachable(AgentError):
    """Connect, TLS or reset failures, after retries were spent."""

    reason = "UPSTREAM_UNREACHABLE"


class CredentialsUnavailable(AgentError):
    """A credential could not be obtained or refreshed; the message says why, never the secret."""

    reason = "CREDENTIALS_UNAVAILABLE"


class ShuttingDown(AgentError):
    """The agent is draining after SIGTERM and takes no new calls; retry on another replica."""

    reason = "SHUTTING_DOWN"


class UpstreamTimeout(AgentError):
    """The call's deadline or the integration's timeout ran out."""

    reason = "UPSTREAM_TIMEOUT"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a configuration, located by its dotted path (``integrations.x.timeout``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A configuration that cannot be loaded; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[ConfigProblem], *, source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        head = f"invalid configuration{f' in {source}' if source else ''}"
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{head} ({len(self.problems)} problem(s)):\n{lines}")
