"""The audit log: one JSON line per call, written off the call path.

The ``CallFinished`` subscriber only appends the event to a bounded deque (a full one drops the
line and counts it: a slow disk or a blocked stdout pipe must never slow a call). A writer
thread wakes every ``FLUSH_INTERVAL`` (or as soon as a batch is waiting), formats what piled up
and writes it with one write and one flush; file and pipe writes block, which is why this is a
thread and not a task on the event loop. Waking per line instead cost a GIL hand-off, a
condition notify and a write syscall on every call. ``close`` drains and flushes, within a time
limit. Lines hold no secrets and no bodies: only the fields below.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import IO, Final

from agent.events import CallFinished, EventHub

__all__ = ["AuditLog"]

_log = logging.getLogger("agent.telemetry")
_BATCH: Final = 256
#: How long an audit line may wait for the writer (seconds).
FLUSH_INTERVAL: Final = 0.1


def audit_record(event: CallFinished, finished_at: float) -> dict[str, object]:
    """The line's fields (SPEC.md, Telemetry); ``timestamp`` is when the call started."""
    started = datetime.fromtimestamp(finished_at - event.duration, tz=UTC)
    return {
        "timestamp": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "service": event.integration,
        "endpoint": event.endpoint.partition("?")[0],
        "method": event.method,
        "statusCode": event.status,
        "responseTime": round(event.duration * 1000, 3),
        "caller": event.caller,
        "attempts": event.attempts,
        "outcome": event.outcome,
        "traceId": event.trace_id,
    }


class AuditLog:
    """Audit lines to ``stdout``, ``stderr`` or a file (append); ``off`` writes nothing."""

    def __init__(self, destination: str, *, max_queue: int = 10_000) -> None:
        self.destination = destination
        self.dropped = 0
        self.written = 0
        self._max_queue = max_queue
        self._pending: deque[tuple[CallFinished, float]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._stream: IO[str] | None = None
        self._owns_stream = False

    @property
    def enabled(self) -> bool:
        return self.destination != "off"

    def subscribe(self, hub: EventHub) -> None:
        if self.enabled:
            hub.subscribe(CallFinished, self.on_call_finished)

    def start(self) -> None:
        """Open the destination and start the writer thread."""
        if not self.enabled or self._thread is not None:
            return
        if self.destination == "stdout":
            self._stream = sys.stdout
        elif self.destination == "stderr":
            self._stream = sys.stderr
        else:
            try:
                self._stream = open(self.destination, "a", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                _log.error(
                    "cannot open the audit log; audit lines are dropped",
                    extra={"destination": self.destination, "error": str(exc)},
                )
                self.destination = "off"
                return
            self._owns_stream = True
        self._thread = threading.Thread(target=self._run, name="kilo-audit-log", daemon=True)
        self._thread.start()

    def on_call_finished(self, event: CallFinished) -> None:
        pending = self._pending
        if len(pending) >= self._max_queue:
            self.dropped += 1
            return
        pending.append((event, time.time()))  # deque.append is atomic: no lock on the call path
        if len(pending) >= _BATCH and not self._wake.is_set():
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, flush, stop the thread (at most ``timeout`` seconds)."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
        if self._owns_stream and self._stream is not None:
            self._stream.close()
        if self.dropped:
            _log.warning(
                "audit log lines dropped (queue full)",
                extra={"dropped": self.dropped, "destination": self.destination},
            )

    def _run(self) -> None:
        stream = self._stream
        assert stream is not None
        pending = self._pending
        failed = False
        while True:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            stopping = self._stopping  # read before draining: lines appended before close count
            lines = []
            while pending:
                event, finished_at = pending.popleft()
                lines.append(json.dumps(audit_record(event, finished_at), separators=(",", ":")))
            if lines:
                try:
                    stream.write("\n".join(lines) + "\n")
                    stream.flush()
                    self.written += len(lines)
                except (OSError, ValueError) as exc:
                    self.dropped += len(lines)
                    if not failed:  # a state change of a dependency is logged once
                        failed = True
                        _log.warning(
                            "cannot write the audit log",
                            extra={"destination": self.destination, "error": str(exc)},
                        )
            if stopping:
                return
