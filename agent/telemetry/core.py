"""``Telemetry``: everything the agent observes, built once from ``TelemetryConfig`` + ``OTEL_*``.

``AgentApp`` builds one, hands its interceptor to the gRPC server and its ``trace_id`` to the
servicer, lets it instrument each integration's client, and closes it after the drain (audit
lines flushed, spans and metrics exported within a time limit).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation

from agent.events import EventHub
from agent.telemetry.audit import AuditLog
from agent.telemetry.context import install_gated_propagator
from agent.telemetry.genai import GenAiTelemetry
from agent.telemetry.grpc_server import ServerTelemetryInterceptor
from agent.telemetry.histograms import FastMeter
from agent.telemetry.httpx_client import ClientObserver, instrument_client_contrib
from agent.telemetry.metrics import DURATION_BUCKETS, EventMetrics, ExpirySource
from agent.telemetry.process import ProcessMetrics
from agent.telemetry.setup import Providers, TelemetrySettings, build_providers

__all__ = ["Telemetry"]

_log = logging.getLogger("agent.telemetry")
_SCOPE = "kilo-agent"
_SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"


def _version() -> str:
    try:
        from agent import __version__
    except ImportError:  # pragma: no cover
        return "0"
    return str(__version__)


class _DedupFilter(logging.Filter):
    """Lets one record per (logger, message) through per ``interval`` seconds.

    The SDK logs a warning per dropped span and per failed export: a dead collector is a state
    change of a dependency, to be said once in a while, not hundreds of times a second.
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        last = self._last.get(key)
        if last is not None and record.created - last < self._interval:
            return False
        self._last[key] = record.created
        return True


_DEDUP = _DedupFilter()


def _quiet_sdk_logs() -> None:
    for name in ("opentelemetry.sdk._shared_internal", "opentelemetry.exporter.otlp"):
        logger = logging.getLogger(name)
        if _DEDUP not in logger.filters:
            logger.addFilter(_DEDUP)
    # Sub-loggers (…otlp.proto.grpc.exporter) propagate to handlers, not to parents' filters.
    for name in (
        "opentelemetry.exporter.otlp.proto.grpc.exporter",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "opentelemetry.exporter.otlp.proto.http._common",
    ):
        logger = logging.getLogger(name)
        if _DEDUP not in logger.filters:
            logger.addFilter(_DEDUP)


class Telemetry:
    """Traces, metrics and the audit log of one agent."""

    def __init__(
        self,
        config: Any,
        hub: EventHub,
        *,
        env: Mapping[str, str] | None = None,
        span_processors: Sequence[Any] = (),
        metric_readers: Sequence[Any] = (),
        shutdown_timeout: float = 5.0,
    ) -> None:
        env = os.environ if env is None else env
        self.settings = TelemetrySettings.from_env(env)
        self.audit = AuditLog(config.audit_log)
        self.audit.subscribe(hub)
        self._shutdown_timeout = shutdown_timeout
        self.providers: Providers | None = None
        self.interceptor: ServerTelemetryInterceptor | None = None
        self.events: EventMetrics | None = None
        self.genai: GenAiTelemetry | None = None
        if self.settings.disabled:
            return
        if _SEMCONV_OPT_IN not in os.environ:  # read by the instrumentation, once per process
            os.environ[_SEMCONV_OPT_IN] = "http"
        _quiet_sdk_logs()
        propagator = install_gated_propagator()
        self.providers = build_providers(
            self.settings,
            version=_version(),
            scope_name=_SCOPE,
            env=env,
            span_processors=span_processors,
            metric_readers=metric_readers,
            shutdown_timeout=shutdown_timeout,
        )
        tracer = self.providers.tracer_provider.get_tracer(_SCOPE, _version())
        # Histograms on the call path are FastHistograms, exported with the SDK's instruments.
        meter: Any = FastMeter(
            self.providers.meter_provider.get_meter(_SCOPE, _version()),
            self.providers.fast_metrics,
        )
        self._contrib_httpx = env.get("KILO_OTEL_HTTPX_INSTRUMENTATION", "").lower() == "contrib"
        self._clients = ClientObserver(
            tracer,
            meter.create_histogram(
                "http.client.request.duration",
                unit="s",
                description="Duration of HTTP client requests.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            ),
            propagator,
            propagate=config.propagate_trace_context,
        )
        self.interceptor = ServerTelemetryInterceptor(
            tracer, meter, propagator, propagate_upstream=config.propagate_trace_context
        )
        self.events = EventMetrics(meter, hub)
        self.genai = GenAiTelemetry(tracer, meter, hub)
        ProcessMetrics(meter)
        meter.create_observable_counter(
            "kilo.audit.dropped",
            callbacks=[self._observe_audit_drops],
            unit="{line}",
            description="Audit log lines dropped because the writer could not keep up.",
        )

    # -- wiring -----------------------------------------------------------------------------

    @property
    def interceptors(self) -> list[Any]:
        """Server interceptors to install (none when the SDK is disabled)."""
        return [self.interceptor] if self.interceptor is not None else []

    @property
    def trace_id_source(self) -> Callable[[Any], str] | None:
        """What the servicer should call for a call's trace id; None: its own traceparent parse
        (the SDK is disabled, so no server span exists to ask)."""
        return self.trace_id if self.interceptor is not None else None

    def trace_id(self, metadata: Any = None) -> str:
        """32 hex digits of the current call's trace (the server span's), or ""."""
        context = trace.get_current_span().get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else ""

    def instrument_client(self, name: str, client: httpx.AsyncClient, config: Any) -> None:
        """Client spans and ``http.client.request.duration`` for one integration's client."""
        if self.providers is None or self.events is None or self.genai is None:
            return
        self.events.add_integration(name)
        url = httpx.URL(config.effective_base_url())
        self.genai.add_integration(name, url.host, url.port)
        webhook = getattr(config, "webhook_url", None) is not None
        if self._contrib_httpx:
            instrument_client_contrib(
                client,
                integration=name,
                webhook=webhook,
                tracer_provider=self.providers.tracer_provider,
                meter_provider=self.providers.meter_provider,
            )
        else:
            self._clients.observe(client, integration=name, webhook=webhook)

    def instrument_integrations(self, integrations: Iterable[Any]) -> None:
        """``instrument_client`` for each ``Integration`` (name, client, config)."""
        for integration in integrations:
            self.instrument_client(integration.name, integration.client, integration.config)

    def watch_credentials(self, source: ExpirySource) -> None:
        if self.events is not None:
            self.events.watch_expiry(source)

    # -- lifetime ---------------------------------------------------------------------------

    def start(self, address: str) -> None:
        """Start the audit writer; note the bound address for the server spans."""
        self.audit.start()
        if self.interceptor is not None:
            self.interceptor.set_address(address)
        if self.settings.disabled:
            _log.info("telemetry disabled (OTEL_SDK_DISABLED)", extra=self._describe())
        else:
            _log.info("telemetry", extra=self._describe())

    def _describe(self) -> dict[str, object]:
        return {
            "traces_exporters": list(self.settings.traces_exporters),
            "metrics_exporters": list(self.settings.metrics_exporters),
            "audit_log": self.audit.destination,
            "exporting": bool(self.providers and self.providers.exporting),
        }

    async def aclose(self) -> None:
        """Flush the audit log, spans and metrics (bounded; runs off the event loop)."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        self.audit.close(self._shutdown_timeout)
        if self.providers is not None:
            self.providers.shutdown(self._shutdown_timeout)

    def _observe_audit_drops(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.audit.dropped)
