"""A lean tracer: the OpenTelemetry trace API with spans cheap enough for every call.

The SDK's ``Tracer`` costs ~28 µs per span on this machine (measured: attribute validation
through ``BoundedAttributes`` with a lock and an ``isinstance`` ladder per value, a sampler result
object, the span's many fields); the agent makes two or three spans per call, so tracing alone
would take most of the 15 % telemetry budget. These spans keep what the agent needs and nothing
else: W3C ids and flags exactly as the SDK makes them, the SDK's own samplers
(``OTEL_TRACES_SAMPLER``), span limits (128 attributes, events and links), and ended spans handed
to ordinary SDK ``SpanProcessor``s (``BatchSpanProcessor`` for export, ``SimpleSpanProcessor`` +
``InMemorySpanExporter`` in tests), because a ``LeanSpan`` reads like an SDK ``ReadableSpan``.

Attribute values are checked by type (str, bool, int, float, bytes, homogeneous sequences of
them); anything else is dropped, as the SDK drops it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types
from opentelemetry.util._decorator import _agnosticcontextmanager

__all__ = ["LeanSpan", "LeanTracer", "LeanTracerProvider", "env_sampler"]

_log = logging.getLogger("agent.telemetry")

#: The SDK's default span limits (OTEL_SPAN_*_COUNT_LIMIT); the agent's spans stay far below.
MAX_ATTRIBUTES: Final = 128
MAX_EVENTS: Final = 128
MAX_LINKS: Final = 128

_SCALARS: Final = frozenset({str, bool, int, float, bytes})
_UNSET: Final = Status(StatusCode.UNSET)
_getrandbits = random.getrandbits
_time_ns = time.time_ns
# W3C trace flags: sampled, and (trace-context level 2) "the trace id is random" — ours always is.
_FLAGS: Final = {
    (True, True): TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID),
    (True, False): TraceFlags(TraceFlags.SAMPLED),
    (False, True): TraceFlags(TraceFlags.RANDOM_TRACE_ID),
    (False, False): TraceFlags(TraceFlags.DEFAULT),
}


def env_sampler() -> Sampler:
    """The sampler ``OTEL_TRACES_SAMPLER``/``_ARG`` ask for, built by the SDK itself."""
    from opentelemetry.sdk.trace import sampling

    return sampling._get_from_env_or_default()


def _clean_value(value: object) -> object | None:
    """A valid attribute value (sequences become tuples) or None (dropped)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, str | bool | int | float | bytes):  # subclasses, e.g. IntEnum
        return value
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        kinds = {type(item) for item in value if item is not None}
        if len(kinds) <= 1 and kinds <= _SCALARS:
            return tuple(value)
    return None


class LeanSpan(trace_api.Span):
    """A recording span; also the read side (``ReadableSpan``'s attributes) for processors."""

    __slots__ = (
        "_on_end",
        "attributes",
        "context",
        "dropped_attributes",
        "dropped_events",
        "end_time",
        "events",
        "instrumentation_scope",
        "kind",
        "links",
        "name",
        "parent",
        "resource",
        "start_time",
        "status",
    )

    dropped_links: int = 0

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: tuple[Link, ...],
        start_time: int,
        resource: Resource,
        scope: InstrumentationScope,
        on_end: Any,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.links = links
        self.start_time = start_time
        self.end_time: int | None = None
        self.events: list[Event] = []
        self.status = _UNSET
        self.resource = resource
        self.instrumentation_scope = scope
        self.dropped_attributes = 0
        self.dropped_events = 0
        self._on_end = on_end

    # -- the API ------------------------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self.end_time is not None:
            return
        if type(value) not in _SCALARS:
            value = _clean_value(value)  # type: ignore[assignment]
            if value is None:
                return
        attributes = self.attributes
        if len(attributes) >= MAX_ATTRIBUTES and key not in attributes:
            self.dropped_attributes += 1
            return
        attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self.end_time is not None:
            return
        if len(self.events) >= MAX_EVENTS:
            self.dropped_events += 1
            return
        self.events.append(Event(name, _clean_attributes(attributes), timestamp or _time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self.end_time is None and context.is_valid and len(self.links) < MAX_LINKS:
            self.links = (*self.links, Link(context, _clean_attributes(attributes)))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final, UNSET is never set, a description only goes with ERROR.
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self.status = status
        elif status is not StatusCode.UNSET:
            self.status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        stacktrace = "".join(traceback.format_exception(exception))
        event: dict[str, types.AttributeValue] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": stacktrace,
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time or _time_ns()
        self._on_end(self)

    # -- the read side (what SDK exporters use) -------------------------------------------

    def get_readable(self) -> ReadableSpan:
        """The same span as an SDK ``ReadableSpan`` (console export, anything not duck-typed)."""
        return ReadableSpan(
            name=self.name,
            context=self.context,
            parent=self.parent,
            resource=self.resource,
            attributes=self.attributes,
            events=tuple(self.events),
            links=self.links,
            kind=self.kind,
            status=self.status,
            start_time=self.start_time,
            end_time=self.end_time,
            instrumentation_scope=self.instrumentation_scope,
        )

    def to_json(self, indent: int | None = 4) -> str:
        return str(self.get_readable().to_json(indent))

    def __repr__(self) -> str:
        return f'LeanSpan(name="{self.name}", context={self.context})'


def _clean_attributes(attributes: types.Attributes) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    if attributes:
        for key, value in attributes.items():
            if type(value) not in _SCALARS:
                value = _clean_value(value)  # type: ignore[assignment]
                if value is None:
                    continue
            if len(cleaned) >= MAX_ATTRIBUTES:
                break
            cleaned[key] = value
    return cleaned


class LeanTracer(trace_api.Tracer):
    """Starts ``LeanSpan``s under one instrumentation scope of a ``LeanTracerProvider``."""

    def __init__(self, provider: LeanTracerProvider, scope: InstrumentationScope) -> None:
        self._provider = provider
        self._scope = scope

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        provider = self._provider
        parent: SpanContext | None = trace_api.get_current_span(context).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        else:
            parent = None
            trace_id = _getrandbits(128) or 1
            random_id = True
        trace_state = parent.trace_state if parent is not None else None
        links = tuple(link for link in links if link.context.is_valid) if links else ()
        if provider.parent_decides:
            # The default ParentBased(ALWAYS_ON): the parent's flag, or sampled for a root.
            recording = sampled = parent is None or parent.trace_flags.sampled
            span_attributes = _clean_attributes(attributes)
        else:
            result = provider.sampler.should_sample(
                context, trace_id, name, kind, attributes, links
            )
            decision = result.decision
            recording = decision in (Decision.RECORD_ONLY, Decision.RECORD_AND_SAMPLE)
            sampled = decision is Decision.RECORD_AND_SAMPLE
            trace_state = result.trace_state
            span_attributes = _clean_attributes(result.attributes)
        span_context = SpanContext(
            trace_id,
            _getrandbits(64) or 1,
            is_remote=False,
            trace_flags=_FLAGS[(sampled, random_id)],
            trace_state=trace_state,
        )
        if not recording:
            return trace_api.NonRecordingSpan(span_context)
        if len(links) > MAX_LINKS:
            links = links[:MAX_LINKS]
        return LeanSpan(
            name,
            span_context,
            parent,
            kind,
            span_attributes,
            links,
            start_time or _time_ns(),
            provider.resource,
            self._scope,
            provider.on_end,
        )

    @_agnosticcontextmanager  # the API's own decorator (a context manager for sync and async use)
    def start_as_current_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanTracerProvider(trace_api.TracerProvider):
    """Tracers, the sampler, the resource and the span processors of one agent."""

    def __init__(self, resource: Resource, sampler: Sampler | None = None) -> None:
        self.resource = resource
        self.sampler = sampler if sampler is not None else env_sampler()
        self.parent_decides = _is_default_parent_based(self.sampler)
        self._processors: tuple[SpanProcessor, ...] = ()
        self._tracers: dict[tuple[str, str | None, str | None], LeanTracer] = {}
        self._lock = threading.Lock()
        self.on_end: Callable[[Any], None] = _no_processor

    def add_span_processor(self, processor: SpanProcessor) -> None:
        """Ended sampled spans go to every processor, in the order they were added."""
        with self._lock:
            self._processors = (*self._processors, processor)
            ends = tuple(p.on_end for p in self._processors)
        if len(ends) == 1:
            self.on_end = ends[0]
        else:

            def on_end(span: LeanSpan) -> None:
                for end in ends:
                    end(span)  # type: ignore[arg-type]

            self.on_end = on_end

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> LeanTracer:
        key = (instrumenting_module_name, instrumenting_library_version, schema_url)
        with self._lock:
            tracer = self._tracers.get(key)
            if tracer is None:
                scope = InstrumentationScope(
                    instrumenting_module_name,
                    instrumenting_library_version,
                    schema_url,
                    attributes,
                )
                tracer = self._tracers[key] = LeanTracer(self, scope)
        return tracer

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        flushed = True
        for processor in self._processors:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            flushed = processor.force_flush(left) and flushed
        return flushed

    def shutdown(self) -> None:
        """Each processor's own shutdown (the batch processor's is bounded; see setup.py)."""
        processors, self._processors = self._processors, ()
        self.on_end = _no_processor
        for processor in processors:
            processor.shutdown()


def _no_processor(span: LeanSpan) -> None:
    """Nothing exports: the span was still worth making (its ids continue the caller's trace)."""


def _is_default_parent_based(sampler: Sampler) -> bool:
    """Whether ``sampler`` is ParentBased(ALWAYS_ON) with the default delegates.

    Then the decision is the parent's flag (sampled for a root) and needs no sampler call.
    """
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

    if type(sampler) is not ParentBased:
        return False
    delegates = vars(sampler)
    expected = {
        "_root": ALWAYS_ON,
        "_remote_parent_sampled": ALWAYS_ON,
        "_remote_parent_not_sampled": ALWAYS_OFF,
        "_local_parent_sampled": ALWAYS_ON,
        "_local_parent_not_sampled": ALWAYS_OFF,
    }
    return all(delegates.get(name) is value for name, value in expected.items())
