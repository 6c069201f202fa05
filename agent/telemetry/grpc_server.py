"""Server span and ``rpc.server.call.duration`` for every gRPC call (a grpc.aio interceptor).

The span continues the caller's W3C ``traceparent``/``tracestate``, is named ``{rpc.method}`` and
carries the current RPC conventions (``rpc.system.name``, fully-qualified ``rpc.method``,
string ``rpc.response.status_code``, ``server.address``/``server.port``) plus
``kilo.integration``; every non-OK status is an error. The contrib grpc instrumentation still
emits the old names and no RPC metrics, hence this small one. The wrapper runs on the handler's
own task, so the span's context (with the call's ``CallState``) is current for the servicer,
the engine, the httpx instrumentation and every event subscriber of the call.

Health and reflection get the metric but no span (probes would drown the traces).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeAlias

import grpc
from opentelemetry import context as otel_context
from opentelemetry.metrics import Meter
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context

from agent.telemetry.context import CALL_STATE_KEY, PROPAGATE_KEY, CallState, metadata_carrier
from agent.telemetry.metrics import DURATION_BUCKETS

__all__ = ["ServerTelemetryInterceptor"]

TRACED_SERVICE: Final = "kilo.agent.v1.IntegrationAgent"

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic for the stubs only
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable["Handler | None"]]


def _code_name(context: Any, error: BaseException | None) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int) and code:  # abort_with_status stores the number in some versions
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "OK" if error is None else "UNKNOWN"


class ServerTelemetryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps each method handler once (cached per method) with the span and the metric."""

    def __init__(
        self,
        tracer: Tracer,
        meter: Meter,
        propagator: TextMapPropagator,
        *,
        propagate_upstream: bool,
    ) -> None:
        self._tracer = tracer
        self._propagator = propagator
        self._propagate = propagate_upstream
        self._handlers: dict[str, Handler] = {}
        self._server_attrs: dict[str, str | int] = {}
        self.duration = meter.create_histogram(
            "rpc.server.call.duration",
            unit="s",
            description="Measures the duration of inbound remote procedure calls.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def set_address(self, address: str) -> None:
        """``server.address``/``server.port`` once the server is bound (a socket path: no port)."""
        if address.startswith("unix:"):
            self._server_attrs = {"server.address": address.removeprefix("unix:").lstrip("/")}
            self._server_attrs["server.address"] = "/" + str(self._server_attrs["server.address"])
            return
        host, _, port = address.rpartition(":")
        self._server_attrs = {"server.address": host.strip("[]")}
        if port.isdigit():
            self._server_attrs["server.port"] = int(port)

    async def intercept_service(  # type: ignore[override]
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method = handler_call_details.method
        try:
            return self._handlers[method]
        except KeyError:
            pass
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: not cached (callers could make up any number)
            return None
        wrapped = self._wrap(method.lstrip("/"), handler)
        self._handlers[method] = wrapped
        return wrapped

    def _wrap(self, rpc_method: str, handler: Handler) -> Handler:
        traced = rpc_method.startswith(TRACED_SERVICE + "/")
        if handler.unary_unary is not None:
            behavior = self._unary(rpc_method, handler.unary_unary, traced)
            return grpc.unary_unary_rpc_method_handler(
                behavior,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream = self._unary_stream(rpc_method, handler.unary_stream, traced)  # type: ignore[arg-type]
            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # client- and bidi-streaming methods: none of ours

    # -- the two shapes ------------------------------------------------------------------

    def _begin(self, rpc_method: str, request: Any, context: Any) -> tuple[Any, object]:
        carrier = metadata_carrier(context.invocation_metadata())
        # No traceparent/baggage (most callers): nothing to extract, the span is a root.
        parent = self._propagator.extract(carrier) if carrier else None
        integration = getattr(request, "integration", "")
        attributes: dict[str, str | int] = {
            "rpc.system.name": "grpc",
            "rpc.method": rpc_method,
            **self._server_attrs,
        }
        if integration:
            attributes["kilo.integration"] = integration
        span = self._tracer.start_span(
            rpc_method, parent, kind=SpanKind.SERVER, attributes=attributes
        )
        ctx = set_span_in_context(span, parent)
        ctx = otel_context.set_value(CALL_STATE_KEY, CallState(span, integration), ctx)
        if self._propagate:
            ctx = otel_context.set_value(PROPAGATE_KEY, True, ctx)
        return span, otel_context.attach(ctx)

    def _end(
        self,
        rpc_method: str,
        span: Any,
        token: object,
        context: Any,
        started: float,
        error: BaseException | None,
    ) -> None:
        code = _code_name(context, error)
        attrs = {
            "rpc.system.name": "grpc",
            "rpc.method": rpc_method,
            "rpc.response.status_code": code,
        }
        if code != "OK":
            attrs["error.type"] = code
        self.duration.record(time.perf_counter() - started, attrs)
        if span is not None:
            span.set_attribute("rpc.response.status_code", code)
            if code != "OK":
                span.set_attribute("error.type", code)
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            otel_context.detach(token)  # type: ignore[arg-type]

    def _unary(
        self, rpc_method: str, inner: Callable[..., Awaitable[Any]], traced: bool
    ) -> Callable[..., Awaitable[Any]]:
        async def behavior(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            span, token = self._begin(rpc_method, request, context) if traced else (None, None)
            error: BaseException | None = None
            try:
                return await inner(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._end(rpc_method, span, token, context, started, error)

        return behavior

    def _unary_stream(
        self, rpc_method: str, inner: Callable[..., AsyncIterator[Any]], traced: bool
    ) -> Callable[..., AsyncIterator[Any]]:
        async def behavior(request: Any, context: Any) -> AsyncIterator[Any]:
            started = time.perf_counter()
            span, token = self._begin(rpc_method, request, context) if traced else (None, None)
            error: BaseException | None = None
            try:
                async for item in inner(request, context):
                    yield item
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._end(rpc_method, span, token, context, started, error)

        return behavior
