"""LLM tokens: estimate a request's cost before sending, read the real usage afterwards.

Estimate (for ``tokens_per_minute`` admission when the caller passed ``tokens=0``): the output
budget the request asks for (OpenAI ``max_tokens``/``max_completion_tokens``, Responses
``max_output_tokens``, Anthropic ``max_tokens``, Gemini ``generationConfig.maxOutputTokens``) plus
the body's size at ~4 bytes per token, the rule of thumb OpenAI's own limiter uses. Bodies that are
not JSON are counted by size. The estimate is corrected from the usage the response reports.

Usage: OpenAI chat ``usage.prompt_tokens/completion_tokens``, OpenAI Responses and Anthropic
``usage.input_tokens/output_tokens`` (Anthropic's cache reads and writes are added to input, as the
GenAI conventions count them), Gemini ``usageMetadata.promptTokenCount/candidatesTokenCount``
(+ ``thoughtsTokenCount``). ``SSEUsage`` finds the same in a Server-Sent Events stream, fed
chunk by chunk: OpenAI's final chunk (``stream_options.include_usage``), the Responses
``response.completed`` event, Anthropic ``message_start`` + ``message_delta``, Gemini chunks.
Only events that mention usage are JSON-decoded, so text deltas cost a substring search.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BYTES_PER_TOKEN",
    "SSEUsage",
    "TokenUsage",
    "estimate_tokens",
    "extract_usage",
    "read_answer",
]

BYTES_PER_TOKEN = 4.0
_MAX_LINE = 1024 * 1024  # an SSE line longer than this is dropped, not buffered forever


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens a call consumed."""

    input_tokens: int
    output_tokens: int

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _output_budget(doc: dict[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_output_tokens", "max_tokens"):
        n = _int(doc.get(name))
        if n:
            return n
    config = doc.get("generationConfig") or doc.get("generation_config")
    if isinstance(config, dict):
        return _int(config.get("maxOutputTokens") or config.get("max_output_tokens"))
    return 0


def estimate_tokens(
    body: bytes, *, default_output_tokens: int = 0, bytes_per_token: float = BYTES_PER_TOKEN
) -> int:
    """Tokens to charge for a request body before it is sent (>= 1 for a non-empty body)."""
    if not body:
        return default_output_tokens
    prompt = math.ceil(len(body) / bytes_per_token)
    output = default_output_tokens
    if body[:1] in (b"{", b" ", b"\n", b"\t", b"\r"):
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            output = _output_budget(doc) or default_output_tokens
    return prompt + output


def _usage_from(doc: dict[str, Any]) -> TokenUsage | None:
    usage = doc.get("usage")
    if isinstance(usage, dict):
        if "prompt_tokens" in usage or "completion_tokens" in usage:  # OpenAI chat/completions
            return TokenUsage(
                _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
            )
        if "input_tokens" in usage or "output_tokens" in usage:  # Responses API, Anthropic
            cached = _int(usage.get("cache_creation_input_tokens")) + _int(
                usage.get("cache_read_input_tokens")
            )
            return TokenUsage(
                _int(usage.get("input_tokens")) + cached, _int(usage.get("output_tokens"))
            )
    meta = doc.get("usageMetadata")
    if isinstance(meta, dict):  # Gemini
        return TokenUsage(
            _int(meta.get("promptTokenCount")),
            _int(meta.get("candidatesTokenCount")) + _int(meta.get("thoughtsTokenCount")),
        )
    return None


def extract_usage(body: bytes) -> TokenUsage | None:
    """Usage reported by a (non-streamed) JSON response body, or None."""
    if b"sage" not in body:  # "usage" / "usageMetadata": skip decoding bodies without it
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return _usage_from(doc) if isinstance(doc, dict) else None


def read_answer(body: bytes) -> tuple[TokenUsage | None, str]:
    """Usage and model name (``model``, or Gemini's ``modelVersion``) of a JSON answer, decoded
    once for both the token budget and telemetry."""
    if body[:1] not in (b"{", b" ", b"\n", b"\r", b"\t"):
        return None, ""
    try:
        doc = json.loads(body)
    except ValueError:
        return None, ""
    if not isinstance(doc, dict):
        return None, ""
    model = doc.get("model") or doc.get("modelVersion")
    return _usage_from(doc), model[:128] if isinstance(model, str) else ""


class SSEUsage:
    """Incremental usage finder for an SSE response: ``feed(chunk)`` as bytes arrive, then read
    ``usage`` (None until an event reported it)."""

    __slots__ = ("_buf", "_data", "_input", "_output", "_seen")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._input = 0
        self._output = 0
        self._seen = False

    @property
    def usage(self) -> TokenUsage | None:
        return TokenUsage(self._input, self._output) if self._seen else None

    def feed(self, chunk: bytes) -> None:
        buf = self._buf + chunk if self._buf else chunk
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = buf[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                self._dispatch()
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
        rest = buf[start:]
        self._buf = rest if len(rest) <= _MAX_LINE else b""

    def close(self) -> None:
        """End of stream: dispatch a last event that had no blank line after it."""
        if self._buf.startswith(b"data:"):
            self.feed(b"\n")
        self._dispatch()

    def _dispatch(self) -> None:
        if not self._data:
            return
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        if b"sage" not in data or (b'"usage":null' in data and b"usageMetadata" not in data):
            return  # OpenAI sends "usage":null on every chunk but the last
        try:
            doc = json.loads(data)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        kind = doc.get("type")
        if kind == "message_start":  # Anthropic: input (and a first output count)
            message = doc.get("message")
            usage = _usage_from(message) if isinstance(message, dict) else None
            if usage is not None:
                self._input, self._output, self._seen = (
                    usage.input_tokens,
                    usage.output_tokens,
                    True,
                )
            return
        if kind == "message_delta":  # Anthropic: cumulative output; input only if restated
            raw = doc.get("usage")
            if isinstance(raw, dict):
                self._output = _int(raw.get("output_tokens")) or self._output
                usage = _usage_from(doc)
                if usage is not None and usage.input_tokens:
                    self._input = usage.input_tokens
                self._seen = True
            return
        if isinstance(doc.get("response"), dict):  # OpenAI Responses: response.completed
            doc = doc["response"]
        usage = _usage_from(doc)  # OpenAI final chunk; Gemini chunks carry a running total
        if usage is not None:
            self._input, self._output, self._seen = usage.input_tokens, usage.output_tokens, True
