"""The lean tracer against the SDK's own: same ids, flags, encoding, sampling and span rules."""

from __future__ import annotations

import io
import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import (
    encode_spans as sdk_encode_spans,
)
from opentelemetry.propagate import extract
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBasedTraceIdRatio
from opentelemetry.trace import SpanKind, Status, StatusCode

from agent.telemetry.otlp_encoder import encode_spans
from agent.telemetry.tracing import MAX_ATTRIBUTES, LeanSpan, LeanTracerProvider

RESOURCE = Resource.create({"service.name": "kilo-agent-test"})
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def memory() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def lean(memory: InMemorySpanExporter) -> Iterator[LeanTracerProvider]:
    provider = LeanTracerProvider(RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider
    provider.shutdown()


def _one_span(provider: trace_api.TracerProvider, parent: context_api.Context | None) -> None:
    tracer = provider.get_tracer("kilo-agent", "1.0")
    span = tracer.start_span(
        "POST",
        parent,
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": "POST", "server.port": 443, "ok": True},
        start_time=1_000,
    )
    span.set_attribute("http.response.status_code", 503)
    span.set_attributes({"error.type": "503", "ratio": 0.5, "tags": ["a", "b"]})
    span.add_event("retry", {"attempt": 2}, timestamp=1_500)
    span.set_status(Status(StatusCode.ERROR, "upstream failed"))
    span.end(end_time=2_000)


@pytest.mark.parametrize("traceparent", [None, TRACEPARENT])
def test_same_span_as_the_sdk_byte_for_byte(
    lean: LeanTracerProvider, memory: InMemorySpanExporter, traceparent: str | None
) -> None:
    sdk_memory = InMemorySpanExporter()
    sdk = TracerProvider(resource=RESOURCE)
    sdk.add_span_processor(SimpleSpanProcessor(sdk_memory))
    parent = extract({"traceparent": traceparent}) if traceparent else None
    random.seed(1234)  # both draw their ids from random.getrandbits, in the same order
    _one_span(sdk, parent)
    random.seed(1234)
    _one_span(lean, parent)
    (theirs,) = sdk_memory.get_finished_spans()
    (ours,) = memory.get_finished_spans()
    assert ours.context == theirs.context  # ids and W3C flags (sampled, random trace id)
    assert sdk_encode_spans([ours]) == sdk_encode_spans([theirs])
    assert ExportTraceServiceRequest.FromString(encode_spans([ours])) == sdk_encode_spans([theirs])
    if traceparent:
        assert format(ours.context.trace_id, "032x") == TRACEPARENT.split("-")[1]
        assert ours.parent is not None
        assert ours.parent.is_remote


def test_children_follow_the_current_span(lean: LeanTracerProvider) -> None:
    tracer = lean.get_tracer("kilo-agent")
    with tracer.start_as_current_span("server", kind=SpanKind.SERVER) as server:
        child = tracer.start_span("GET", kind=SpanKind.CLIENT)
        child.end()
    assert isinstance(child, LeanSpan)
    assert child.parent == server.get_span_context()
    assert child.context.trace_id == server.get_span_context().trace_id


def test_an_exception_in_a_current_span_is_recorded(
    lean: LeanTracerProvider, memory: InMemorySpanExporter
) -> None:
    tracer = lean.get_tracer("kilo-agent")
    with pytest.raises(ValueError, match="boom"), tracer.start_as_current_span("work"):
        raise ValueError("boom")
    (span,) = memory.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: boom"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"


def test_attribute_rules(lean: LeanTracerProvider) -> None:
    span = lean.get_tracer("kilo-agent").start_span("s", attributes={"bad": object(), "n": 1})
    assert isinstance(span, LeanSpan)
    span.set_attribute("list", [1, 2])
    span.set_attribute("mixed", [1, "a"])  # not homogeneous: dropped, as the SDK drops it
    span.set_attribute("none", None)  # type: ignore[arg-type]
    for i in range(MAX_ATTRIBUTES + 5):
        span.set_attribute(f"k{i}", i)
    assert span.attributes["list"] == (1, 2)
    assert "bad" not in span.attributes
    assert "mixed" not in span.attributes
    assert len(span.attributes) == MAX_ATTRIBUTES
    assert span.dropped_attributes == 7  # "n", "list" and k0..k125 fit; k126..k132 did not
    span.end()
    span.set_attribute("late", 1)
    assert "late" not in span.attributes
    assert not span.is_recording()


def test_status_rules_and_a_single_end(
    lean: LeanTracerProvider, memory: InMemorySpanExporter
) -> None:
    span = lean.get_tracer("kilo-agent").start_span("s")
    span.set_status(StatusCode.UNSET)
    assert span.status.status_code is StatusCode.UNSET
    span.set_status(StatusCode.OK)
    span.set_status(StatusCode.ERROR, "too late")  # OK is final
    assert span.status.status_code is StatusCode.OK
    span.end()
    span.end()
    assert len(memory.get_finished_spans()) == 1


def test_samplers_from_the_sdk(memory: InMemorySpanExporter) -> None:
    off = LeanTracerProvider(RESOURCE, ALWAYS_OFF)
    off.add_span_processor(SimpleSpanProcessor(memory))
    span = off.get_tracer("kilo-agent").start_span("dropped")
    span.end()
    assert not span.is_recording()
    assert span.get_span_context().is_valid  # still has ids: the call's trace id stays known
    assert not span.get_span_context().trace_flags.sampled

    ratio = LeanTracerProvider(RESOURCE, ParentBasedTraceIdRatio(0.0))
    ratio.add_span_processor(SimpleSpanProcessor(memory))
    assert not ratio.get_tracer("k").start_span("root").is_recording()
    sampled_parent = extract({"traceparent": TRACEPARENT})
    child = ratio.get_tracer("k").start_span("child", sampled_parent)
    assert child.is_recording()  # the parent's decision wins over the ratio
    child.end()
    assert [s.name for s in memory.get_finished_spans()] == ["child"]


def test_default_sampler_respects_an_unsampled_parent(lean: LeanTracerProvider) -> None:
    assert lean.parent_decides  # the default ParentBased(ALWAYS_ON) takes the fast path
    unsampled = extract({"traceparent": TRACEPARENT[:-2] + "00"})
    span = lean.get_tracer("k").start_span("child", unsampled)
    assert not span.is_recording()
    assert format(span.get_span_context().trace_id, "032x") == TRACEPARENT.split("-")[1]


def test_sampler_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    provider = LeanTracerProvider(RESOURCE)
    assert provider.sampler is ALWAYS_OFF
    assert not provider.parent_decides


def test_console_exporter_reads_a_lean_span(lean: LeanTracerProvider) -> None:
    span = lean.get_tracer("k").start_span("printed", attributes={"a": 1})
    span.end()
    out = io.StringIO()
    ConsoleSpanExporter(out=out).export([span])  # type: ignore[list-item]
    printed = json.loads(out.getvalue())
    assert printed["name"] == "printed"
    assert printed["attributes"] == {"a": 1}


def test_a_full_span_queue_drops_new_spans_and_says_so_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from agent.telemetry.setup import _BoundedBatchSpanProcessor

    release = threading.Event()
    exported: list[str] = []

    class Stuck(SpanExporter):  # a collector that does not answer until released
        def export(self, spans: Any) -> SpanExportResult:
            release.wait(10)
            exported.extend(s.name for s in spans)
            return SpanExportResult.SUCCESS

    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
    processor = _BoundedBatchSpanProcessor(Stuck(), shutdown_timeout=5.0)
    provider = LeanTracerProvider(RESOURCE)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("k")
    with caplog.at_level("WARNING", logger="agent.telemetry"):
        for i in range(40):
            tracer.start_span(f"s{i}").end()
    full = [r for r in caplog.records if "span queue full" in r.getMessage()]
    assert len(full) == 1  # said once, not once per dropped span
    assert processor.dropped >= 40 - 8 - 4  # queue of 8, and at most one batch in the exporter
    release.set()
    provider.shutdown()
    assert len(exported) == 40 - processor.dropped  # every span not dropped was exported
    assert exported[0] == "s0"  # oldest first, as the SDK's batcher sends them
