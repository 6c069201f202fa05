"""The only module that touches the OpenTelemetry SDK: providers, exporters, processors, resource.

Every setting comes from the standard ``OTEL_*`` environment (read once, at start-up):

- ``OTEL_SDK_DISABLED=true``: no providers, spans or metrics (the audit log still runs).
- ``OTEL_SERVICE_NAME`` > ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES`` > ``kilo-agent``.
- ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: ``otlp``, ``console`` or ``none``
  (default: see below).
- ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]PROTOCOL``: ``grpc`` (default) or ``http/protobuf``;
  ``..._ENDPOINT``, ``_HEADERS``, ``_TIMEOUT``, ``_COMPRESSION``, ``_INSECURE``...: read by the
  exporters themselves.
- ``OTEL_TRACES_SAMPLER`` / ``_ARG`` (default ``parentbased_always_on``): the SDK's samplers,
  used by the agent's lean tracer (``tracing.py``: SDK-compatible spans at a fifth of the cost).
- ``OTEL_BSP_*``: the bounded span queue (2048); a full queue drops spans, never blocks a call.
- ``OTEL_METRIC_EXPORT_INTERVAL`` (60000 ms): metric export period.
- ``OTEL_SEMCONV_STABILITY_OPT_IN``: set to ``http`` unless the operator set it (stable HTTP
  names from the httpx instrumentation).

Default when nothing says where to export: if no ``OTEL_*_EXPORTER`` is set and no OTLP endpoint
is set either, spans are still created (so every call has a trace id, continued from the caller)
and metrics are still recorded, but nothing is exported: a sidecar without a collector must not
log connection errors forever. Setting an endpoint (or ``OTEL_TRACES_EXPORTER=otlp``) turns OTLP
export on. Export runs in the SDK's worker threads behind bounded queues, so a collector that is
down or slow costs dropped telemetry, never a slower or failed call.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from agent.telemetry.histograms import FastMetrics
from agent.telemetry.tracing import LeanTracerProvider

__all__ = ["DEFAULT_SERVICE_NAME", "Providers", "TelemetrySettings", "build_providers"]

DEFAULT_SERVICE_NAME = "kilo-agent"
_log = logging.getLogger("agent.telemetry")
_TRUE = frozenset({"true", "1", "yes", "on"})
_ENDPOINTS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """What the ``OTEL_*`` environment asks for, resolved once."""

    disabled: bool
    traces_exporters: tuple[str, ...]  # "otlp" / "console"; empty: spans created, not exported
    metrics_exporters: tuple[str, ...]
    traces_protocol: str  # "grpc" | "http/protobuf"
    metrics_protocol: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TelemetrySettings:
        disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE
        endpoint_set = any(env.get(name, "").strip() for name in _ENDPOINTS)
        default = "otlp" if endpoint_set else "none"
        protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip() or "grpc"
        return cls(
            disabled=disabled,
            traces_exporters=_exporters(env.get("OTEL_TRACES_EXPORTER"), default),
            metrics_exporters=_exporters(env.get("OTEL_METRICS_EXPORTER"), default),
            traces_protocol=env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip() or protocol,
            metrics_protocol=env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "").strip() or protocol,
        )


def _exporters(value: str | None, default: str) -> tuple[str, ...]:
    names = [n.strip().lower() for n in (value or default).split(",") if n.strip()]
    if "none" in names:
        return ()
    unknown = [n for n in names if n not in ("otlp", "console")]
    if unknown:
        _log.warning(
            "unsupported OpenTelemetry exporter ignored",
            extra={"exporters": unknown, "supported": ["otlp", "console", "none"]},
        )
    return tuple(n for n in names if n in ("otlp", "console"))


@dataclass(slots=True)
class Providers:
    """The SDK objects of one agent; ``shutdown`` flushes within a time limit."""

    tracer_provider: LeanTracerProvider
    meter_provider: MeterProvider
    fast_metrics: FastMetrics  # the histograms recorded on the call path (histograms.py)
    exporting: bool  # some exporter is configured (for the start-up log line)

    def shutdown(self, timeout: float) -> None:
        """Flush and stop; never takes (much) longer than ``timeout`` seconds.

        The span processor gets most of the time (its worker thread is joined with a limit), the
        meter provider the rest; an exporter still stuck on a dead collector is abandoned (its
        threads are daemons).
        """
        deadline = time.monotonic() + timeout
        self.tracer_provider.shutdown()  # BatchSpanProcessor.shutdown is bounded below
        left = max(0.1, deadline - time.monotonic())
        self.meter_provider.shutdown(timeout_millis=left * 1000)


def build_providers(
    settings: TelemetrySettings,
    *,
    version: str,
    scope_name: str = DEFAULT_SERVICE_NAME,
    env: Mapping[str, str] = os.environ,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
    shutdown_timeout: float = 5.0,
) -> Providers:
    """TracerProvider and MeterProvider per ``settings`` (extra processors/readers: tests)."""
    resource = _resource(version)
    tracer_provider = LeanTracerProvider(resource)  # sampler: OTEL_TRACES_SAMPLER
    for name in settings.traces_exporters:
        exporter = _span_exporter(name, settings.traces_protocol)
        tracer_provider.add_span_processor(
            _BoundedBatchSpanProcessor(exporter, shutdown_timeout=shutdown_timeout)
        )
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    readers = [
        PeriodicExportingMetricReader(_metric_exporter(name, settings.metrics_protocol))
        for name in settings.metrics_exporters
    ]
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[*readers, *metric_readers],
        # Exemplars cost a context lookup per measurement and the Prometheus path drops them:
        # off unless the operator asks (OTEL_METRICS_EXEMPLAR_FILTER).
        exemplar_filter=None
        if env.get("OTEL_METRICS_EXEMPLAR_FILTER")
        else AlwaysOffExemplarFilter(),
    )
    fast_metrics = FastMetrics(resource, InstrumentationScope(scope_name, version))
    fast_metrics.install([*readers, *metric_readers])
    return Providers(
        tracer_provider,
        meter_provider,
        fast_metrics,
        exporting=bool(settings.traces_exporters or settings.metrics_exporters),
    )


def _resource(version: str) -> Resource:
    # OTEL_SERVICE_NAME beats OTEL_RESOURCE_ATTRIBUTES' service.name, which beats our default.
    resource = Resource.create({SERVICE_VERSION: version})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


class _BoundedBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's batch processor with a shutdown that waits at most ``shutdown_timeout``, and
    a full queue that costs a call nothing.

    When the collector is down or slow the queue fills; the SDK then logs a warning for every
    span it drops (a log record per span, on the call path). Here a full queue drops the new
    span, counts it and says so at most once a minute.
    """

    def __init__(self, exporter: SpanExporter, *, shutdown_timeout: float) -> None:
        super().__init__(exporter)
        self._shutdown_timeout_ms = int(shutdown_timeout * 1000)
        self.dropped = 0
        self._said_at = -math.inf
        # The SDK batcher's own queue and wake-up event, to enqueue without its per-span
        # os.getpid() syscall (its fork check; it re-initialises after a fork by itself).
        batch = self._batch_processor
        self._queue: Any = getattr(batch, "_queue", None)
        self._max_queue = int(getattr(batch, "_max_queue_size", 0))
        self._batch_size = int(getattr(batch, "_max_export_batch_size", 0))
        self._awaken: Any = getattr(batch, "_worker_awaken", None)
        if self._awaken is None or not self._batch_size:
            self._queue = None  # an SDK whose batcher looks different: its own path

    def on_end(self, span: Any) -> None:
        queue = self._queue
        if queue is None:
            super().on_end(span)
            return
        if not span.context.trace_flags.sampled:  # recorded, not sampled: never exported
            return
        if len(queue) >= self._max_queue:
            self.dropped += 1
            now = time.monotonic()
            if now - self._said_at >= 60.0:
                self._said_at = now
                _log.warning(
                    "span queue full (the collector is down or slow): new spans are dropped",
                    extra={"dropped": self.dropped, "max_queue_size": self._max_queue},
                )
            return
        if self._batch_processor._shutdown:
            return
        queue.appendleft(span)  # the SDK batcher's order: new spans left, batches popped right
        if len(queue) >= self._batch_size and not self._awaken.is_set():
            self._awaken.set()

    def shutdown(self) -> None:
        self._batch_processor.shutdown(timeout_millis=self._shutdown_timeout_ms)


def _span_exporter(name: str, protocol: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # The SDK's OTLP exporters with the agent's span encoder (otlp_export.py).
    if protocol.startswith("http"):
        from agent.telemetry.otlp_export import HttpSpanExporter

        return HttpSpanExporter()
    from agent.telemetry.otlp_export import GrpcSpanExporter

    return GrpcSpanExporter()


def _metric_exporter(name: str, protocol: str) -> MetricExporter:
    if name == "console":
        return ConsoleMetricExporter()
    exporter: Any
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )

        exporter = HttpMetricExporter()
    else:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter()
    return exporter  # type: ignore[no-any-return]
