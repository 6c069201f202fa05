"""The hand-written OTLP encoder against the SDK's own: for the same spans, the bytes parse to
the same ExportTraceServiceRequest (real SDK spans, duck-typed spans, random attributes)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import (
    encode_spans as sdk_encode_spans,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from agent.telemetry.otlp_encoder import encode_spans

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

REMOTE = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "abc"), ("other", "x-1")]),
)

EVERY_TYPE: dict[str, Any] = {
    "http.request.method": "POST",
    "server.address": "api.openai.com",
    "server.port": 443,
    "http.response.status_code": 200,
    "kilo.rate_limit.wait": 0.0,
    "kilo.cache.hit": True,
    "kilo.retry": False,
    "empty": "",
    "unicode": "grüße, 世界 🚀",
    "zero": 0,
    "negative": -1,
    "int64.min": INT64_MIN,
    "int64.max": INT64_MAX,
    "float.negative_zero": -0.0,
    "float.inf": math.inf,
    "float.tiny": 5e-324,
    "raw": b"\x00\xff",
    "strings": ["a", "", "ü"],
    "bools": [True, False],
    "ints": [1, -2, INT64_MAX],
    "floats": [1.5, -0.25],
    "empty.list": [],
}


def request_of(spans: Sequence[Any]) -> ExportTraceServiceRequest:
    """Our bytes, parsed."""
    return ExportTraceServiceRequest.FromString(encode_spans(spans))


def sdk_request(spans: Sequence[Any]) -> ExportTraceServiceRequest:
    """The SDK's message for the same spans (it reads duck-typed spans just as well)."""
    return sdk_encode_spans(spans)


def assert_same_as_sdk(spans: Sequence[Any]) -> ExportTraceServiceRequest:
    ours = request_of(spans)
    assert ours == sdk_request(spans)
    return ours


@dataclass
class Tracing:
    """Tracer providers (one per resource) writing to one in-memory exporter."""

    exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    providers: list[TracerProvider] = field(default_factory=list)

    def provider(self, resource: Resource, limits: SpanLimits | None = None) -> TracerProvider:
        provider = TracerProvider(resource=resource, span_limits=limits)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.providers.append(provider)
        return provider

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    t = Tracing()
    yield t
    for provider in t.providers:
        provider.shutdown()


@dataclass
class PlainSpan:
    """Another span class with ReadableSpan's read side: plain dicts, lists and tuples."""

    name: str = "plain"
    context: SpanContext = field(
        default_factory=lambda: SpanContext(0x1234, 0x5678, False, TraceFlags(1))
    )
    parent: SpanContext | None = None
    kind: SpanKind = SpanKind.INTERNAL
    start_time: int | None = 1_700_000_000_000_000_000
    end_time: int | None = 1_700_000_000_123_456_789
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[Event] = ()
    links: Sequence[Link] = ()
    status: Status = field(default_factory=Status)
    resource: Resource = field(default_factory=lambda: Resource({"service.name": "plain"}))
    instrumentation_scope: InstrumentationScope | None = None
    dropped_attributes: int = 0
    dropped_events: int = 0
    dropped_links: int = 0

    def get_span_context(self) -> SpanContext:  # what the SDK encoder reads
        return self.context


def attributes_of(any_values: Sequence[Any]) -> dict[str, AnyValue]:
    return {kv.key: kv.value for kv in any_values}


# -- real SDK spans ---------------------------------------------------------------------------


def test_a_mixed_batch_parses_to_the_sdk_request(tracing: Tracing) -> None:
    """Kinds, parents (remote, local, none), trace_state, events, links, every status, every
    attribute type, two resources and two scopes interleaved in one batch."""
    api = tracing.provider(Resource.create({"service.name": "kilo-agent"}, "https://schema/1"))
    other = tracing.provider(Resource({"service.name": "other", "host.cores": 8}))
    server = api.get_tracer(
        "agent.server", "1.2.3", schema_url="https://scope/1", attributes={"scope.attr": "x"}
    )
    client = api.get_tracer("agent.client")
    elsewhere = other.get_tracer("elsewhere", "9")

    remote_parent = trace.set_span_in_context(NonRecordingSpan(REMOTE))
    with server.start_as_current_span(
        "Call", kind=SpanKind.SERVER, context=remote_parent, attributes=EVERY_TYPE
    ) as root:
        root.add_event("rate_limited", {"wait": 0.25, "attempt": 2, "tags": ["a", "b"]})
        root.add_event("no attributes")
        with client.start_as_current_span(
            "POST", kind=SpanKind.CLIENT, links=[Link(REMOTE, {"link.kind": "cause"})]
        ) as call:
            call.set_attribute("server.port", 443)
            call.set_status(Status(StatusCode.ERROR, "upstream said 503"))
        with elsewhere.start_as_current_span("work", links=[Link(call.get_span_context())]) as w:
            w.set_status(Status(StatusCode.OK))
        with server.start_as_current_span("bare error", kind=SpanKind.INTERNAL) as bare:
            bare.set_status(Status(StatusCode.ERROR))
        root.record_exception(ValueError("boom"))
    for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
        with elsewhere.start_as_current_span(f"new trace {kind.name}", kind=kind):
            pass
    spans = tracing.spans()
    assert len(spans) == 6

    ours = assert_same_as_sdk(spans)

    # Independently of the SDK: the shape and the fields that are easy to get wrong.
    # Spans reach the exporter as they end: the client's POST first.
    assert [[ss.scope.name for ss in rs.scope_spans] for rs in ours.resource_spans] == [
        ["agent.client", "agent.server"],
        ["elsewhere"],
    ]
    assert ours.resource_spans[0].schema_url == "https://schema/1"
    server_scope = ours.resource_spans[0].scope_spans[1]
    assert server_scope.scope.version == "1.2.3"
    assert server_scope.schema_url == "https://scope/1"
    assert attributes_of(server_scope.scope.attributes)["scope.attr"].string_value == "x"
    by_name = {
        span.name: span for rs in ours.resource_spans for ss in rs.scope_spans for span in ss.spans
    }
    call_span = by_name["Call"]
    assert call_span.parent_span_id == REMOTE.span_id.to_bytes(8, "big")
    assert call_span.trace_id == REMOTE.trace_id.to_bytes(16, "big")
    assert call_span.trace_state == "vendor=abc,other=x-1"
    assert call_span.flags == 0x300  # has is_remote | is_remote
    assert call_span.kind == PbSpan.SPAN_KIND_SERVER
    assert call_span.start_time_unix_nano < call_span.end_time_unix_nano
    assert [e.name for e in call_span.events] == ["rate_limited", "no attributes", "exception"]
    values = attributes_of(call_span.attributes)
    assert values["int64.min"].int_value == INT64_MIN
    assert values["kilo.retry"].WhichOneof("value") == "bool_value"
    assert values["empty"].WhichOneof("value") == "string_value"
    assert values["unicode"].string_value == "grüße, 世界 🚀"
    assert [v.int_value for v in values["ints"].array_value.values] == [1, -2, INT64_MAX]
    assert by_name["POST"].flags == 0x100
    assert by_name["POST"].status.code == StatusCode.ERROR.value
    assert by_name["POST"].status.message == "upstream said 503"
    assert by_name["POST"].links[0].flags == 0x300
    assert by_name["work"].links[0].flags == 0x100
    assert by_name["work"].status.code == StatusCode.OK.value
    assert by_name["bare error"].status.message == ""
    assert by_name["new trace PRODUCER"].parent_span_id == b""
    assert by_name["new trace PRODUCER"].flags == 0x100


def test_dropped_counts_are_carried(tracing: Tracing) -> None:
    limits = SpanLimits(max_span_attributes=2, max_events=1, max_links=1)
    tracer = tracing.provider(Resource({"service.name": "limited"}), limits).get_tracer("t")
    links = [Link(REMOTE), Link(REMOTE, {"a": 1})]
    with tracer.start_as_current_span("s", links=links, attributes={"a": 1, "b": 2, "c": 3}) as s:
        s.add_event("one")
        s.add_event("two")
    (span,) = request_of(tracing.spans()).resource_spans[0].scope_spans[0].spans
    assert_same_as_sdk(tracing.spans())
    assert (span.dropped_attributes_count, span.dropped_events_count) == (1, 1)
    assert span.dropped_links_count == 1


def test_equal_resources_and_scopes_share_a_group_in_first_seen_order(tracing: Tracing) -> None:
    """The SDK groups by ==, not identity: equal Resource objects from two providers are one."""
    a1 = tracing.provider(Resource({"service.name": "a"}))
    b = tracing.provider(Resource({"service.name": "b"}))
    a2 = tracing.provider(Resource({"service.name": "a"}))
    for provider in (b, a1, a2, b, a1):
        for scope in ("s2", "s1"):
            with provider.get_tracer(scope).start_as_current_span(scope):
                pass
    ours = assert_same_as_sdk(tracing.spans())
    services = [
        attributes_of(rs.resource.attributes)["service.name"].string_value
        for rs in ours.resource_spans
    ]
    assert services == ["b", "a"]
    assert [ss.scope.name for ss in ours.resource_spans[1].scope_spans] == ["s2", "s1"]
    assert [len(ss.spans) for ss in ours.resource_spans[1].scope_spans] == [3, 3]


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_spans([]) == b""
    assert request_of([]) == sdk_request([])


# -- duck-typed spans -------------------------------------------------------------------------


def test_a_plain_span_class_parses_to_the_sdk_request() -> None:
    scope = InstrumentationScope("plain.scope", None, None, {"k": [1, 2]})
    spans = [
        PlainSpan(
            attributes={
                **EVERY_TYPE,
                "mapping": {"a": 1, "nested": {"b": [True]}, 3: "int key"},
                "none": None,
                "with.none": [None, "x"],
                "tuple": ("a", "b"),
            },
            events=[Event("e", {"x": 1.5}, 1_700_000_000_000_000_001)],
            links=[Link(REMOTE, {"weight": 2})],
            parent=SpanContext(0x1234, 0x9999, False),
            status=Status(StatusCode.ERROR, "bad"),
            instrumentation_scope=scope,
            dropped_attributes=3,
            dropped_events=4,
            dropped_links=5,
        ),
        PlainSpan(name="", start_time=None, end_time=None, kind=SpanKind.CONSUMER),
        PlainSpan(context=SpanContext(1, 2, False, trace_state=TraceState()), parent=REMOTE),
    ]
    ours = assert_same_as_sdk(spans)
    assert [len(ss.spans) for ss in ours.resource_spans[0].scope_spans] == [1, 2]
    assert ours.resource_spans[0].scope_spans[1].HasField("scope")  # present though empty
    first = ours.resource_spans[0].scope_spans[0].spans[0]
    values = attributes_of(first.attributes)
    assert values["raw"].bytes_value == b"\x00\xff"
    assert attributes_of(values["mapping"].kvlist_value.values)["3"].string_value == "int key"
    assert first.HasField("status")
    assert values["none"] == AnyValue()


def test_a_bad_attribute_value_is_left_out_and_the_rest_survive() -> None:
    span = PlainSpan(
        attributes={
            "before": "kept",
            "object": object(),
            "too.big": 2**64,
            "too.small": INT64_MIN - 1,
            "list.too.big": [1, 2**63],
            "surrogate": "\ud800",
            "set": {1, 2},
            "after": 7,
        },
        events=[Event("e", {"bad": object(), "good": True})],  # type: ignore[dict-item]
    )
    encoded = encode_spans([span])  # does not raise
    ours = ExportTraceServiceRequest.FromString(encoded)
    (pb_span,) = ours.resource_spans[0].scope_spans[0].spans
    assert [kv.key for kv in pb_span.attributes] == ["before", "after"]
    assert [kv.key for kv in pb_span.events[0].attributes] == ["good"]
    assert ours == sdk_request([span])  # the SDK logs and skips the same ones


def test_the_value_cache_keeps_true_1_and_1_0_apart() -> None:
    """True == 1 == 1.0 (and they hash alike), so a cache keyed on the value alone mixes them."""
    oneof = {bool: "bool_value", int: "int_value", float: "double_value"}
    orders: list[list[Any]] = [
        [True, 1, 1.0],
        [1.0, 1, True],
        [1, True, 1.0],
        [False, 0, 0.0, -0.0],
        [-0.0, 0.0, 0, False],
    ]
    for order in orders:
        for value in order:
            for _ in range(2):  # the second time comes from the cache
                span = PlainSpan(attributes={"v": value})
                ours = request_of([span])
                (kv,) = ours.resource_spans[0].scope_spans[0].spans[0].attributes
                assert kv.value.WhichOneof("value") == oneof[type(value)]
                assert ours == sdk_request([span])
    for sequence in [(True, 1), (1, True), (1.0, True)]:
        assert_same_as_sdk([PlainSpan(attributes={"seq": sequence})])


def test_the_caches_stay_right_past_their_bound() -> None:
    spans = [PlainSpan(attributes={"n": n, "s": f"value-{n}", "f": n / 7}) for n in range(5000)]
    assert_same_as_sdk(spans)
    assert_same_as_sdk(spans[::-1])


def test_a_new_resource_at_a_reused_address_is_not_served_from_the_cache() -> None:
    """Resource and scope blocks are cached by id(), and CPython reuses the ids of freed objects:
    the cache must hold on to what it caches (or check identity)."""
    for n in range(50):
        span = PlainSpan(
            resource=Resource({"n": n}), instrumentation_scope=InstrumentationScope(f"s{n}")
        )
        ours = request_of([span])
        assert attributes_of(ours.resource_spans[0].resource.attributes)["n"].int_value == n
        assert ours.resource_spans[0].scope_spans[0].scope.name == f"s{n}"


# -- random attributes ------------------------------------------------------------------------

int64s = st.integers(INT64_MIN, INT64_MAX)
floats = st.floats(allow_nan=False)
scalars = st.one_of(st.text(), st.booleans(), int64s, floats)
values = st.one_of(
    scalars,
    st.lists(st.text(), max_size=5),
    st.lists(st.booleans(), max_size=5),
    st.lists(int64s, max_size=5),
    st.lists(floats, max_size=5),
)
attribute_dicts = st.dictionaries(st.text(max_size=30), values, max_size=12)


@settings(max_examples=300, deadline=None)
@given(span_attributes=attribute_dicts, event_attributes=attribute_dicts, names=st.text())
def test_random_attributes_parse_to_the_sdk_request(
    span_attributes: dict[str, Any], event_attributes: dict[str, Any], names: str
) -> None:
    # st.text() includes lone surrogates: neither encoder can write those, both skip them.
    name = names.encode("utf-8", "replace").decode()
    span = PlainSpan(
        name=name,
        attributes=span_attributes,
        events=[Event(name, event_attributes, 1)],
        links=[Link(REMOTE, event_attributes)],
    )
    assert_same_as_sdk([span, span])
