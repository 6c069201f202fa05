"""Client spans and ``http.client.request.duration`` for every upstream attempt.

One CLIENT span per physical attempt, named and attributed by the stable HTTP client semantic
conventions (``http.request.method``, ``server.address``, ``server.port``, ``url.full`` through
``redact_url``, ``http.response.status_code``, ``error.type``, ``network.protocol.version``,
``http.request.resend_count``) plus ``kilo.integration``; status ERROR for 4xx/5xx and failures.

Two implementations, same names and attributes:

* ``lean`` (default): a small wrapper around the integration client's transport. Measured on
  this path (benchmarks/bench_telemetry.py) it costs a fraction of the contrib instrumentation.
* ``contrib``: ``HTTPXClientInstrumentor.instrument_client`` from
  opentelemetry-instrumentation-httpx (``KILO_OTEL_HTTPX_INSTRUMENTATION=contrib``). It normalizes
  request and response headers on every attempt even when none are captured (quadratic in
  httpx's ``Headers.encoding``), re-parses the URL twice and copies the headers to inject; about
  0.3 ms of CPU per attempt here, over the 15 % budget on its own.

``traceparent`` is injected only when ``telemetry.propagate_trace_context`` is on: the lean
wrapper checks the call's context itself; for ``contrib`` the global ``GatedPropagator`` does.
"""

from __future__ import annotations

import time
from typing import Any, Final

import httpx
from opentelemetry.metrics import Histogram, MeterProvider
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import (
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
    set_span_in_context,
)

from agent.telemetry import context as tctx
from agent.telemetry.redact import redact_url

__all__ = ["ClientObserver", "instrument_client_contrib"]

_KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
#: Redacted ``url.full`` values remembered per integration (calls repeat their URLs).
_REDACTED_MEMO: Final = 512


def _protocol_version(version: object) -> str:
    if version == b"HTTP/1.1":
        return "1.1"
    text = version.decode("ascii", "replace") if isinstance(version, bytes) else str(version)
    return text.removeprefix("HTTP/")


class ClientObserver:
    """Wraps one integration client's transport (``observe``); shared instruments."""

    def __init__(
        self,
        tracer: Tracer,
        duration: Histogram,
        propagator: TextMapPropagator,
        *,
        propagate: bool = True,
    ) -> None:
        self._tracer = tracer
        self._duration = duration
        self._propagator = propagator
        self._propagate = propagate  # False: telemetry.propagate_trace_context is off

    def observe(self, client: httpx.AsyncClient, *, integration: str, webhook: bool) -> None:
        transports: list[Any] = [client._transport, *client._mounts.values()]
        for transport in transports:
            if transport is not None and not getattr(transport, "_kilo_observed", False):
                self._wrap(transport, integration, webhook)

    def _wrap(self, transport: Any, integration: str, webhook: bool) -> None:
        inner = transport.handle_async_request
        tracer, duration, propagator = self._tracer, self._duration, self._propagator
        propagate = self._propagate
        redacted: dict[str, str] = {}

        def url_full(url: str) -> str:
            safe = redacted.get(url)
            if safe is None:
                if len(redacted) >= _REDACTED_MEMO:
                    redacted.clear()
                safe = redacted[url] = redact_url(url, webhook=webhook)
            return safe

        async def handle_async_request(request: httpx.Request) -> httpx.Response:
            url = request.url
            method = request.method if request.method in _KNOWN_METHODS else "_OTHER"
            port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
            metric_attrs: dict[str, str | int] = {
                "http.request.method": method,
                "server.address": url.host,
                "server.port": port,
            }
            span_attrs: dict[str, str | int] = {
                **metric_attrs,
                "url.full": url_full(str(url)),
                "kilo.integration": integration,
            }
            if method == "_OTHER":
                span_attrs["http.request.method_original"] = request.method
            state = tctx.call_state()
            if state is not None:
                state.attempts += 1
                if state.attempts > 1:
                    span_attrs["http.request.resend_count"] = state.attempts - 1
            span = tracer.start_span(
                "HTTP" if method == "_OTHER" else method,
                kind=SpanKind.CLIENT,
                attributes=span_attrs,
            )
            # Inside a call (state) whose agent propagates: the server span set PROPAGATE_KEY too.
            if propagate and state is not None:
                propagator.inject(request.headers, set_span_in_context(span))
            started = time.perf_counter()
            try:
                response: httpx.Response = await inner(request)
            except BaseException as exc:
                if not isinstance(exc, Exception):  # cancelled by the caller: not an error
                    span.end()
                    raise
                error = type(exc).__qualname__
                metric_attrs["error.type"] = error
                duration.record(time.perf_counter() - started, metric_attrs)
                span.set_attribute("error.type", error)
                span.set_status(Status(StatusCode.ERROR))
                span.end()
                raise
            elapsed = time.perf_counter() - started
            status = response.status_code
            version = response.extensions.get("http_version", b"HTTP/1.1")
            answer: dict[str, str | int] = {
                "http.response.status_code": status,
                "network.protocol.version": _protocol_version(version),
            }
            if status >= 400:
                answer["error.type"] = str(status)
                span.set_status(Status(StatusCode.ERROR))
            duration.record(elapsed, {**metric_attrs, **answer})
            span.set_attributes(answer)
            span.end()
            return response

        transport.handle_async_request = handle_async_request
        transport._kilo_observed = True


def instrument_client_contrib(
    client: httpx.AsyncClient,
    *,
    integration: str,
    webhook: bool,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
) -> None:
    """The same spans through opentelemetry-instrumentation-httpx (slower; see module doc)."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
    from opentelemetry.trace import Span

    async def request_hook(span: Span, request: RequestInfo) -> None:
        if not span.is_recording():
            return
        span.set_attribute("url.full", redact_url(str(request.url), webhook=webhook))
        span.set_attribute("kilo.integration", integration)
        state = tctx.call_state()
        if state is not None:
            state.attempts += 1
            if state.attempts > 1:
                span.set_attribute("http.request.resend_count", state.attempts - 1)

    instrumentor: Any = HTTPXClientInstrumentor
    instrumentor.instrument_client(
        client,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        request_hook=request_hook,
    )
