"""The resolved configuration as data that is safe to print (``kilo-agent check-config``).

Every ``Secret`` is ``***``; a webhook URL keeps its scheme and host only; a Redis password is
masked; a static header whose name suggests a credential (``X-Api-Token``, ``Cookie``...) is
masked too, since ``headers`` values are plain strings.
"""

from __future__ import annotations

from typing import Any

from .models import Config
from .secret import MASK, Secret

__all__ = ["redacted_dump", "secret_values"]

_SENSITIVE_HEADER_WORDS = (
    "auth",
    "token",
    "key",
    "secret",
    "password",
    "cookie",
    "signature",
    "session",
    "credential",
)


def _sensitive_header(name: str) -> bool:
    lower = name.lower()
    return any(word in lower for word in _SENSITIVE_HEADER_WORDS)


def redacted_dump(config: Config) -> dict[str, Any]:
    """The resolved configuration, JSON-serialisable, with every secret redacted."""
    data: dict[str, Any] = config.model_dump(mode="json")
    if config.redis is not None:
        data["redis"]["url"] = config.redis.display_url()
    for name, integration in config.integrations.items():
        out = data["integrations"][name]
        if integration.webhook_url is not None:
            out["webhook_url"] = integration.display_base_url()
        out["headers"] = {
            header: MASK if _sensitive_header(header) else value
            for header, value in integration.headers.items()
        }
    return data


def secret_values(config: Config) -> list[str]:
    """Every ``Secret`` value in the config: what the log scrubber must never let through."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Secret):
            found.append(value.get())
        elif hasattr(value, "model_fields"):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(config)
    return found
