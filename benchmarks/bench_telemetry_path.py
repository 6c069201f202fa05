"""What the telemetry layer itself costs per call, in-process and without noise from the network.

bench_telemetry.py measures the whole agent, where this machine's speed drifts by more than
the effect being measured. This one runs only what telemetry adds to a call, the real objects
on a stub call: the server interceptor's wrapper (span, context, ``rpc.server.call.duration``),
the client observer around a transport that answers at once (client span,
``http.client.request.duration``), the trace id read for the call's meta, and the
``CallFinished`` event (``kilo.calls``, ``kilo.call.duration``, server-span attributes). Spans
go to the real batch processor with an exporter that encodes them with the agent's OTLP encoder
(so export CPU is counted) but sends nothing; metrics are collected by an in-memory reader at
the end (collection is per interval, not per call).

Reported: CPU µs per call for telemetry off (the stub call alone) and on, and the difference.

    .venv/bin/python benchmarks/bench_telemetry_path.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402

from agent.config.models import TelemetryConfig  # noqa: E402
from agent.events import CallFinished, EventHub  # noqa: E402
from agent.telemetry import Telemetry  # noqa: E402
from agent.telemetry.otlp_encoder import encode_spans  # noqa: E402
from agent.telemetry.setup import _BoundedBatchSpanProcessor  # noqa: E402

METHOD = "kilo.agent.v1.IntegrationAgent/Call"
URL = "http://127.0.0.1:8080/v1/chat/completions"


class EncodeOnly(SpanExporter):
    """Encodes every batch as the OTLP exporter would, and sends nothing."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        encode_spans(spans)
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


class Answer(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{}", request=request)


class Context:
    """The parts of a grpc.aio servicer context the interceptor reads."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", "Bearer x"),)

    def code(self) -> None:
        return None


class Request:
    integration = "bench"


class Integration:
    def __init__(self) -> None:
        self.name = "bench"
        self.client = httpx.AsyncClient(transport=Answer())
        self.config = type("C", (), {"effective_base_url": lambda self: URL, "webhook_url": None})()


async def run(calls: int, on: bool) -> tuple[float, int]:
    hub = EventHub()
    exporter = EncodeOnly()
    env = {} if on else {"OTEL_SDK_DISABLED": "true"}
    telemetry = Telemetry(
        TelemetryConfig(audit_log="off"),
        hub,
        env=env,
        span_processors=[_BoundedBatchSpanProcessor(exporter, shutdown_timeout=5.0)],
        metric_readers=[InMemoryMetricReader()],
    )
    integration = Integration()
    telemetry.instrument_integrations([integration])
    telemetry.start("127.0.0.1:50051")
    transport = integration.client._transport

    async def servicer(request: Any, context: Any) -> int:
        started = time.monotonic()
        response = await transport.handle_async_request(httpx.Request("POST", URL))
        trace_id = telemetry.trace_id() if on else ""
        if hub.has_subscribers(CallFinished):
            hub.publish(
                CallFinished(
                    integration="bench",
                    caller="",
                    method="POST",
                    endpoint="/v1/chat/completions",
                    status=response.status_code,
                    outcome="ok",
                    duration=time.monotonic() - started,
                    attempts=1,
                    trace_id=trace_id,
                )
            )
        return response.status_code

    handler: Any = servicer
    if telemetry.interceptor is not None:
        handler = telemetry.interceptor._unary(METHOD, servicer, True)
    request, context = Request(), Context()
    for _ in range(1000):  # warm-up
        await handler(request, context)
    started = time.process_time()
    for _ in range(calls):
        await handler(request, context)
    telemetry.close()  # the last spans are encoded before the clock stops
    return (time.process_time() - started) / calls * 1e6, exporter.spans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    off, on, spans = [], [], 0
    for _ in range(args.repeat):  # interleaved: drift hits both alike
        off.append(asyncio.run(run(args.calls, on=False))[0])
        cost, spans = asyncio.run(run(args.calls, on=True))
        on.append(cost)
    base, with_telemetry = statistics.median(off), statistics.median(on)
    print(f"stub call, telemetry off: {base:6.1f} µs CPU per call")
    print(f"stub call, telemetry on:  {with_telemetry:6.1f} µs CPU per call ({spans} spans)")
    print(f"telemetry adds:           {with_telemetry - base:6.1f} µs CPU per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
