"""A real OTLP receiver on loopback: OTLP/gRPC (opentelemetry-proto's collector service stubs)
or, with ``protocol="http/protobuf"``, OTLP/HTTP (``POST /v1/traces`` and ``/v1/metrics``).

Runs a synchronous server on its own threads and keeps every export request it receives,
so a test can read the spans and metrics an agent process sent, or scan the raw bytes. With
``delay`` it answers slowly (a collector under pressure); ``stop()`` makes it a dead endpoint.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as metrics_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc


@dataclass
class OtlpReceiver:
    endpoint: str = ""  # http://127.0.0.1:PORT, for OTEL_EXPORTER_OTLP_ENDPOINT
    delay: float = 0.0
    protocol: str = "grpc"  # or "http/protobuf"
    traces: list[trace_pb.ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[metrics_pb.ExportMetricsServiceRequest] = field(default_factory=list)
    _server: Any = None
    _changed: threading.Condition = field(default_factory=threading.Condition)

    # -- what arrived ----------------------------------------------------------------------

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, Span proto) for every span received."""
        with self._changed:
            requests = list(self.traces)
        out = []
        for request in requests:
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    out.extend((resource, span) for span in ss.spans)
        return out

    def metric_names(self) -> set[str]:
        with self._changed:
            requests = list(self.metrics)
        return {
            m.name
            for request in requests
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }

    def raw(self) -> bytes:
        """Every export request, serialized: for scanning for secrets."""
        with self._changed:
            requests: list[Any] = [*self.traces, *self.metrics]
        return b"".join(r.SerializeToString() for r in requests)

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> bool:
        """Poll ``predicate(self)`` until true or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                return False
            with self._changed:
                self._changed.wait(0.1)
        return True

    def _add(self, target: list[Any], request: Any) -> None:
        if self.delay:
            time.sleep(self.delay)
        with self._changed:
            target.append(request)
            self._changed.notify_all()

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> OtlpReceiver:
        if self.protocol.startswith("http"):
            return self._start_http()
        receiver = self

        class Traces(trace_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                receiver._add(receiver.traces, request)
                return trace_pb.ExportTraceServiceResponse()

        class Metrics(metrics_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                receiver._add(receiver.metrics, request)
                return metrics_pb.ExportMetricsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_grpc.add_TraceServiceServicer_to_server(Traces(), server)
        metrics_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def _start_http(self) -> OtlpReceiver:
        receiver = self
        kinds = {
            "/v1/traces": (trace_pb.ExportTraceServiceRequest, trace_pb.ExportTraceServiceResponse),
            "/v1/metrics": (
                metrics_pb.ExportMetricsServiceRequest,
                metrics_pb.ExportMetricsServiceResponse,
            ),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                kind = kinds.get(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if kind is None or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_error(404 if kind is None else 415)
                    return
                request = kind[0].FromString(body)
                target = receiver.traces if self.path == "/v1/traces" else receiver.metrics
                receiver._add(target, request)
                answer = kind[1]().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        self.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        return self

    def stop(self) -> None:
        if isinstance(self._server, ThreadingHTTPServer):
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        elif self._server is not None:
            self._server.stop(0).wait(5)
            self._server = None


def attributes(kvs: Any) -> dict[str, Any]:
    """OTLP KeyValue list -> dict of plain Python values."""
    out: dict[str, Any] = {}
    for kv in kvs:
        kind = kv.value.WhichOneof("value")
        value = getattr(kv.value, kind) if kind else None
        if kind == "array_value":
            value = [getattr(v, v.WhichOneof("value")) for v in value.values]
        out[kv.key] = value
    return out


def run_receiver(delay: float = 0.0, protocol: str = "grpc") -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver(delay=delay, protocol=protocol).start()
    try:
        yield receiver
    finally:
        receiver.stop()
