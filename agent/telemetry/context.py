"""What telemetry keeps in the OpenTelemetry context of one gRPC call, and the propagation gate.

The server span's context carries a small mutable ``CallState`` (attempt count, integration,
what the events of this call reported) so that event subscribers running inline on the call's
task can annotate the right span without any global lookup. The same context carries whether
``traceparent`` may leave the agent: the httpx instrumentation injects through the global
propagator, which ``GatedPropagator`` turns into a no-op unless the call's context allows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import Span

__all__ = [
    "CallState",
    "GatedPropagator",
    "call_state",
    "install_gated_propagator",
    "metadata_carrier",
]

CALL_STATE_KEY = otel_context.create_key("kilo.call_state")
PROPAGATE_KEY = otel_context.create_key("kilo.propagate_trace_context")
_CARRIED = frozenset({"traceparent", "tracestate", "baggage"})


class CallState:
    """Per-call facts gathered while the call runs (slots: one small object per call)."""

    __slots__ = ("attempts", "cache_hit", "integration", "rate_limit_wait", "span")

    def __init__(self, span: Span, integration: str) -> None:
        self.span = span
        self.integration = integration
        self.attempts = 0
        self.rate_limit_wait = 0.0
        self.cache_hit: bool | None = None


def call_state() -> CallState | None:
    """The state of the gRPC call running on this task, if any."""
    state = otel_context.get_value(CALL_STATE_KEY)
    return state if isinstance(state, CallState) else None


def metadata_carrier(metadata: Iterable[tuple[str, Any]] | None) -> dict[str, str]:
    """The W3C fields of gRPC invocation metadata as a carrier dict (other keys are skipped)."""
    carrier: dict[str, str] = {}
    for key, value in metadata or ():
        if key in _CARRIED:
            carrier[key] = value if isinstance(value, str) else bytes(value).decode("latin-1")
    return carrier


class GatedPropagator(TextMapPropagator):
    """Extracts like ``inner``; injects only when the current context sets ``PROPAGATE_KEY``.

    Trace context is sent to a third party only when ``telemetry.propagate_trace_context`` says
    so (default: never); without a call context (e.g. a credential refresh) nothing is injected.
    """

    def __init__(self, inner: TextMapPropagator) -> None:
        self.inner = inner

    def extract(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> otel_context.Context:
        return self.inner.extract(carrier, context, getter)

    def inject(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        if otel_context.get_value(PROPAGATE_KEY, context) is True:
            self.inner.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self.inner.fields


def install_gated_propagator() -> TextMapPropagator:
    """Wrap the global propagator (``OTEL_PROPAGATORS``) once; returns the inner one."""
    current = propagate.get_global_textmap()
    if isinstance(current, GatedPropagator):
        return current.inner
    propagate.set_global_textmap(GatedPropagator(current))
    return current
