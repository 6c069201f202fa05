"""deploy/observability: the dashboard only queries metrics the agent emits; the collector config
is well formed; the Helm chart ships the same files."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from opentelemetry.sdk.metrics.export import Histogram, Sum

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from agent.app import AgentApp
from agent.config import parse_config
from agent.events import (
    BreakerStateChanged,
    CacheLookup,
    CredentialRefreshed,
    FallbackUsed,
    LlmUsage,
    RateLimitRejected,
    RateLimitWaited,
    UpstreamHold,
)
from tests.conftest import base_config
from tests.support.otlp_memory import MemoryTelemetry
from tests.support.upstream import Upstream

ROOT = Path(__file__).resolve().parent.parent
OBSERVABILITY = ROOT / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "kilo-agent-dashboard.json"
COLLECTOR = OBSERVABILITY / "otel-collector.yaml"
CHART_FILES = ROOT / "deploy" / "helm" / "kilo-agent" / "files"

_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}
_PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "label_values", "topk", "bottomk", "abs", "clamp_min", "clamp_max", "delta", "deriv",
    "time", "vector", "scalar", "le",
}  # fmt: skip


def prometheus_names(metric: Any) -> set[str]:
    """The series names the collector's prometheus exporter makes of one OTel metric."""
    base = re.sub(r"[^a-zA-Z0-9_:]", "_", metric.name)
    unit = metric.unit or ""
    suffix = _UNITS.get(unit, "")
    data = metric.data
    is_gauge = not isinstance(data, Histogram | Sum) or (
        isinstance(data, Sum) and not data.is_monotonic
    )
    if suffix == "ratio" and not is_gauge:
        suffix = ""
    if suffix and not base.endswith(suffix):
        base = f"{base}_{suffix}"
    if isinstance(data, Histogram):
        return {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    if isinstance(data, Sum) and data.is_monotonic:
        return {f"{base}_total"}
    return {base}


def queried_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (labels, strings, ranges and functions removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)", r"\1", text)
    names = set(re.findall(r"(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w(])", text))
    return {n for n in names if n not in _PROMQL_WORDS}


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            out.append((f"${variable['name']}", query["query"]))
    return out


@pytest.fixture
async def emitted(upstream: Upstream) -> set[str]:
    """Prometheus names of every metric a real in-process agent emits (in-memory reader)."""
    memory = MemoryTelemetry()
    config = base_config(upstream.url)
    config["telemetry"] = {"audit_log": "off"}
    app = AgentApp(parse_config(config), telemetry=memory.factory())
    async with grpc.aio.insecure_channel(await app.start()) as channel:
        stub = pb_grpc.IntegrationAgentStub(channel)
        await stub.Call(pb.CallRequest(integration="echo", method="GET", path="/x"))
        await stub.Call(pb.CallRequest(integration="up", method="GET", path="/status/503"))
        # Policy paths this run does not reach by itself, as their publishers emit them.
        hub = app.hub
        hub.publish(BreakerStateChanged("up", "CLOSED", "OPEN"))
        hub.publish(RateLimitWaited("echo", "checkout", 0.2))
        hub.publish(RateLimitRejected("echo", "checkout", 1.0, "max_wait"))
        hub.publish(UpstreamHold("echo", "", 1.0, "retry_after"))
        hub.publish(FallbackUsed("echo", "up", "CIRCUIT_OPEN"))
        hub.publish(CacheLookup("echo", hit=True))
        hub.publish(CredentialRefreshed("echo", True, datetime.now(UTC) + timedelta(hours=1)))
        hub.publish(
            LlmUsage("echo", "checkout", "openai", "/chat/completions", "m", "m", 3, 4, 0.1, 200)
        )
        names: set[str] = set()
        for metric in memory.instruments().values():
            names |= prometheus_names(metric)
    await app.stop()
    return names


async def test_every_dashboard_query_uses_metrics_the_agent_emits(emitted: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    unknown = [
        (title, name)
        for title, expr in dashboard_queries(dashboard)
        for name in sorted(queried_metrics(expr) - emitted)
    ]
    assert unknown == [], f"emitted: {sorted(emitted)}"


def test_the_dashboard_covers_what_operators_ask() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = " ".join(expr for _, expr in dashboard_queries(dashboard))
    for needed in (
        "kilo_calls_total",
        "kilo_call_duration_seconds_bucket",
        "kilo_breaker_state",
        "kilo_rate_limit_wait_seconds_bucket",
        "kilo_rate_limit_rejections_total",
        "kilo_credential_time_to_expiry_seconds",
        "gen_ai_client_token_usage_sum",
        "process_cpu_time_seconds_total",
        "process_memory_usage_bytes",
    ):
        assert needed in queries, needed
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"]
            assert panel["datasource"]["uid"] == "${datasource}"


def test_query_parser() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, kilo_integration) "
        '(rate(kilo_call_duration_seconds_bucket{job=~"$job", kilo_outcome!="ok"}[5m]))) '
        "/ on(instance) group_left(x) process_thread_count"
    )
    assert queried_metrics(expr) == {"kilo_call_duration_seconds_bucket", "process_thread_count"}
    assert queried_metrics("label_values(kilo_calls_total, job)") == {"kilo_calls_total"}


def test_collector_config() -> None:
    config = yaml.safe_load(COLLECTOR.read_text(encoding="utf-8"))
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    for name, pipeline in pipelines.items():
        assert pipeline["receivers"] == ["otlp"], name
        assert pipeline["processors"][0] == "memory_limiter", name
        assert "batch" in pipeline["processors"], name
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline[kind]:
                assert component in config[kind], f"{name}: {component} is not defined"
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert any(e.startswith("otlp") for e in pipelines["traces"]["exporters"])
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]


def test_helm_chart_ships_the_same_files() -> None:
    assert (CHART_FILES / "dashboard.json").read_bytes() == DASHBOARD.read_bytes()
    assert (CHART_FILES / "otel-collector.yaml").read_bytes() == COLLECTOR.read_bytes()
