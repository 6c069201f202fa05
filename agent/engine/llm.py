"""GenAI facts of an LLM call for telemetry: the model name the request asked for.

The answer's model and usage come from ``policies.tokens.read_answer`` (one decode for both).

Only the model names and usage leave this module; never prompt or completion content.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["request_model"]


def _doc(body: bytes) -> dict[str, Any] | None:
    if not body or body[:1] not in (b"{", b" ", b"\n", b"\r", b"\t"):
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _name(value: object) -> str:
    return value[:128] if isinstance(value, str) else ""


def request_model(body: bytes) -> str:
    """The request JSON's ``model`` ("" for Gemini, whose model is in the path)."""
    doc = _doc(body)
    return _name(doc.get("model")) if doc else ""
