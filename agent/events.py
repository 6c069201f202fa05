"""Small frozen events published by the call path, policies and credentials; telemetry subscribes.

Publishers never know who listens (policies never import OpenTelemetry). Subscribers are plain
callables run inline, so they must be cheap and must not block: record a metric, enqueue an audit
line. A subscriber that raises is logged once per event type and never breaks the publisher.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["CallFinished", "EventHub", "UpstreamAttempt"]

_log = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class UpstreamAttempt:
    """One HTTP attempt to an upstream finished (with a status, or with an error type)."""

    integration: str
    method: str
    status: int  # 0 when no response arrived
    duration: float  # seconds
    attempt: int  # 1-based
    error_type: str = ""


@dataclass(frozen=True, slots=True)
class CallFinished:
    """One gRPC call finished: the audit log's and the call metrics' source."""

    integration: str
    caller: str
    method: str
    endpoint: str  # path without its query
    status: int  # upstream HTTP status; 0 when the agent answered with an error
    outcome: str  # "ok", "upstream_error", or the error reason (e.g. "RATE_LIMITED")
    duration: float  # seconds, whole call
    attempts: int
    trace_id: str = ""


class EventHub:
    """Publish/subscribe by event type; publishing with no subscribers costs one dict lookup."""

    def __init__(self) -> None:
        self._subscribers: dict[type[Any], list[Callable[[Any], None]]] = defaultdict(list)
        self._failed: set[type[Any]] = set()

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        """Call ``handler`` inline for every published event of ``event_type``."""
        self._subscribers[event_type].append(handler)

    def has_subscribers(self, event_type: type[Any]) -> bool:
        """Lets publishers skip building an event nobody reads."""
        return bool(self._subscribers.get(event_type))

    def publish(self, event: object) -> None:
        """Deliver ``event`` to its subscribers; a failing subscriber is logged, never raised."""
        handlers = self._subscribers.get(type(event))
        if not handlers:
            return
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                if type(event) not in self._failed:
                    self._failed.add(type(event))
                    _log.exception("event subscriber failed for %s", type(event).__name__)
