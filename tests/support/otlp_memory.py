"""In-memory telemetry for tests: a ``Telemetry`` factory with InMemorySpanExporter and
InMemoryMetricReader, and helpers that flatten what they hold."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent.events import EventHub
from agent.telemetry import Telemetry


@dataclass
class MemoryTelemetry:
    env: Mapping[str, str] = field(default_factory=dict)
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)
    instances: list[Telemetry] = field(default_factory=list)

    def factory(self) -> Callable[[Any, EventHub], Telemetry]:
        def build(config: Any, hub: EventHub) -> Telemetry:
            telemetry = Telemetry(
                config,
                hub,
                env=self.env,
                span_processors=[SimpleSpanProcessor(self.spans)],
                metric_readers=[self.reader],
            )
            self.instances.append(telemetry)
            return telemetry

        return build

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """name -> [(attributes, data point)] of one collection."""
        return flatten(self.reader.get_metrics_data())

    def instruments(self) -> dict[str, Any]:
        """name -> Metric (unit, data type) of one collection."""
        out: dict[str, Any] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out[metric.name] = metric
        return out


def flatten(data: Any) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points = out.setdefault(metric.name, [])
                points.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
    return out


def point(metrics: dict[str, list[tuple[dict[str, Any], Any]]], name: str, **attrs: Any) -> Any:
    """The one data point of ``name`` whose attributes include ``attrs`` (dots as '__')."""
    wanted = {k.replace("__", "."): v for k, v in attrs.items()}
    found = [p for a, p in metrics.get(name, []) if all(a.get(k) == v for k, v in wanted.items())]
    assert len(found) == 1, f"{name} {wanted}: {len(found)} points in {metrics.get(name)}"
    return found[0]
