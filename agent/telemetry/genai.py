"""GenAI semantic conventions for LLM integrations, from the engine's ``LlmUsage`` events.

Each inference call gets a CLIENT span ``{gen_ai.operation.name} {gen_ai.request.model}``
(child of the server span, sibling of its HTTP attempt spans, timed by the event) and the two
GenAI client histograms. Calls that are not inference (``GET /models``...) are skipped. Model
names come from callers, so each integration keeps at most ``_MAX_MODELS`` distinct values and
reports the rest as ``_OTHER``.
"""

from __future__ import annotations

import time
from typing import Final

from opentelemetry.metrics import Meter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from agent.events import EventHub, LlmUsage

__all__ = ["GenAiTelemetry", "operation_of"]

_TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
_OPERATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_MAX_MODELS: Final = 50
_MAX_MODEL_LEN: Final = 100


def operation_of(endpoint: str) -> tuple[str, str]:
    """``(gen_ai.operation.name, model in the path)`` of an LLM endpoint; "" = not inference."""
    path = endpoint.rstrip("/")
    tail = path.rsplit("/", 1)[-1]
    if ":" in tail:  # Gemini / Vertex: .../models/{model}:generateContent
        model, _, verb = tail.partition(":")
        if verb in ("generateContent", "streamGenerateContent"):
            return "generate_content", model
        if verb in ("embedContent", "batchEmbedContents", "predict"):
            return "embeddings", model
        return "", model
    if path.endswith("/chat/completions") or tail in ("messages", "responses", "chat"):
        return "chat", ""
    if tail == "completions" or tail == "complete":
        return "text_completion", ""
    if tail == "embeddings":
        return "embeddings", ""
    return "", ""


class GenAiTelemetry:
    """Subscribes to ``LlmUsage``: one GenAI span and the GenAI metrics per inference call."""

    def __init__(self, tracer: Tracer, meter: Meter, hub: EventHub) -> None:
        self._tracer = tracer
        self._servers: dict[str, tuple[str, int | None]] = {}
        self._models: dict[str, set[str]] = {}
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_OPERATION_BUCKETS,
        )
        hub.subscribe(LlmUsage, self.on_usage)

    def add_integration(self, name: str, host: str, port: int | None) -> None:
        self._servers[name] = (host, port)

    def _model(self, integration: str, model: str) -> str:
        if not model:
            return ""
        model = model[:_MAX_MODEL_LEN]
        seen = self._models.setdefault(integration, set())
        if model in seen:
            return model
        if len(seen) >= _MAX_MODELS:
            return "_OTHER"
        seen.add(model)
        return model

    def on_usage(self, event: LlmUsage) -> None:
        operation, path_model = operation_of(event.endpoint)
        if not operation:
            return
        request_model = self._model(event.integration, event.request_model or path_model)
        response_model = self._model(event.integration, event.response_model)
        attrs: dict[str, str | int] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": event.provider,
        }
        if request_model:
            attrs["gen_ai.request.model"] = request_model
        if response_model:
            attrs["gen_ai.response.model"] = response_model
        host, port = self._servers.get(event.integration, ("", None))
        if host:
            attrs["server.address"] = host
        if port is not None:
            attrs["server.port"] = port
        if event.error_type:
            attrs["error.type"] = event.error_type
        metric_attrs = {**attrs, "kilo.integration": event.integration, "kilo.caller": event.caller}
        self.operation_duration.record(event.duration, metric_attrs)
        for kind, count in (("input", event.input_tokens), ("output", event.output_tokens)):
            if count >= 0:
                self.token_usage.record(count, {**metric_attrs, "gen_ai.token.type": kind})

        span_attrs: dict[str, str | int | tuple[str, ...]] = {
            **attrs,
            "kilo.integration": event.integration,
        }
        if event.input_tokens >= 0:
            span_attrs["gen_ai.usage.input_tokens"] = event.input_tokens
        if event.output_tokens >= 0:
            span_attrs["gen_ai.usage.output_tokens"] = event.output_tokens
        if event.finish_reasons:
            span_attrs["gen_ai.response.finish_reasons"] = event.finish_reasons
        end = time.time_ns()
        span = self._tracer.start_span(
            f"{operation} {request_model}" if request_model else operation,
            kind=SpanKind.CLIENT,
            attributes=span_attrs,
            start_time=end - int(event.duration * 1e9),
        )
        if event.error_type:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
