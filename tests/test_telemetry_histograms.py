"""FastHistogram against the SDK's Histogram: the same data points through the same readers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from agent.telemetry.histograms import MAX_SERIES, FastMeter, FastMetrics
from agent.telemetry.metrics import DURATION_BUCKETS

RESOURCE = Resource.create({"service.name": "kilo-agent-test"})


def _pair(
    temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE,
) -> tuple[Any, Any, InMemoryMetricReader, InMemoryMetricReader]:
    """(fast histogram, SDK histogram, reader of the fast one, reader of the SDK one)."""
    preferred = {SdkHistogram: temporality}
    fast_reader = InMemoryMetricReader(preferred_temporality=preferred)
    sdk_reader = InMemoryMetricReader(preferred_temporality=preferred)
    fast_provider = MeterProvider(resource=RESOURCE, metric_readers=[fast_reader])
    sdk_provider = MeterProvider(resource=RESOURCE, metric_readers=[sdk_reader])
    fast = FastMetrics(RESOURCE, InstrumentationScope("kilo-agent", "1"))
    fast.install([fast_reader])
    meter = FastMeter(fast_provider.get_meter("kilo-agent", "1"), fast)
    kwargs: Any = {"unit": "s", "explicit_bucket_boundaries_advisory": DURATION_BUCKETS}
    return (
        meter.create_histogram("d", **kwargs),
        sdk_provider.get_meter("kilo-agent", "1").create_histogram("d", **kwargs),
        fast_reader,
        sdk_reader,
    )


def _points(reader: InMemoryMetricReader) -> dict[frozenset[Any], Any]:
    data = reader.get_metrics_data()
    out = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            assert sm.scope.name == "kilo-agent"
            for metric in sm.metrics:
                assert metric.name == "d"
                assert metric.unit == "s"
                for p in metric.data.data_points:
                    out[frozenset(p.attributes.items())] = p
    return out


def _same(fast: Any, sdk: Any) -> None:
    assert fast.keys() == sdk.keys()
    for key, point in fast.items():
        theirs = sdk[key]
        assert point.count == theirs.count
        assert list(point.bucket_counts) == list(theirs.bucket_counts)
        assert list(point.explicit_bounds) == list(theirs.explicit_bounds)
        assert (point.min, point.max) == (theirs.min, theirs.max)
        assert point.sum == pytest.approx(theirs.sum)


values = st.floats(min_value=0, max_value=20, allow_nan=False)
attrs = st.sampled_from(
    [{"kilo.integration": "openai", "kilo.outcome": "ok"}, {"kilo.integration": "x"}, {}]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(values, attrs), max_size=60))
def test_cumulative_points_match_the_sdk(records: list[tuple[float, dict[str, str]]]) -> None:
    fast, sdk, fast_reader, sdk_reader = _pair()
    for value, attributes in records:
        fast.record(value, attributes)
        sdk.record(value, attributes)
    _same(_points(fast_reader), _points(sdk_reader))
    fast.record(0.3, {"late": "yes"})  # and the next collection is cumulative
    sdk.record(0.3, {"late": "yes"})
    _same(_points(fast_reader), _points(sdk_reader))


def test_attribute_order_does_not_split_a_series() -> None:
    fast, _sdk, reader, _ = _pair()
    fast.record(1.0, {"a": "1", "b": "2"})
    fast.record(2.0, {"b": "2", "a": "1"})
    (point,) = _points(reader).values()
    assert point.count == 2


def test_delta_temporality_reports_changes_only() -> None:
    fast, sdk, fast_reader, sdk_reader = _pair(AggregationTemporality.DELTA)
    for value in (0.001, 0.2, 3.0):
        fast.record(value, {"k": "a"})
        sdk.record(value, {"k": "a"})
    _same(_points(fast_reader), _points(sdk_reader))
    fast.record(0.06, {"k": "a"})
    sdk.record(0.06, {"k": "a"})
    second = _points(fast_reader)
    _same(second, _points(sdk_reader))
    (point,) = second.values()
    assert (point.count, point.min, point.max) == (1, 0.06, 0.06)
    assert _points(fast_reader) == {}  # nothing new: no point


def test_negative_values_are_ignored_and_cardinality_is_capped() -> None:
    fast, _sdk, reader, _ = _pair()
    fast.record(-1.0, {"k": "neg"})
    for i in range(MAX_SERIES + 10):
        fast.record(0.1, {"id": str(i)})
    points = _points(reader)
    assert frozenset({("k", "neg")}) not in points
    assert len(points) == MAX_SERIES
    overflow = points[frozenset({("otel.metric.overflow", True)})]
    assert overflow.count == 11


def test_fast_and_sdk_instruments_share_one_scope() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    fast = FastMetrics(RESOURCE, InstrumentationScope("kilo-agent", "1"))
    fast.install([reader])
    meter = FastMeter(provider.get_meter("kilo-agent", "1"), fast)
    meter.create_counter("c").add(1)
    meter.create_histogram("h").record(7.0, {})
    data = reader.get_metrics_data()
    assert data is not None
    ((scope_metrics),) = [sm for rm in data.resource_metrics for sm in rm.scope_metrics]
    assert sorted(m.name for m in scope_metrics.metrics) == ["c", "h"]
    (h,) = [m for m in scope_metrics.metrics if m.name == "h"]
    assert h.data.data_points[0].bucket_counts[2] == 1  # default bounds: (5, 10]
