"""Structured logging: JSON lines by default, human-readable text with a flag.

Set up once at start-up (never on the hot path). A redaction filter scrubs every configured secret
value from formatted records as a last line of defence: no code path should log a secret in the
first place, but an exception message from a library might echo one.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["JsonFormatter", "SecretScrubber", "setup_logging"]

# Attributes every LogRecord has; anything else passed with ``extra=`` becomes a JSON field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def _rfc3339(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level logger: message key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD_ATTRS and not k.startswith("_")
        )
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{clock} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class SecretScrubber(logging.Filter):
    """Replaces known secret values in a record's final text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Very short values would scrub innocent text; real credentials are longer than this.
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        text = record.getMessage()
        exc_text = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
        if not any(s in text or s in exc_text or s in str(extras) for s in self._secrets):
            return True
        for secret in self._secrets:
            text = text.replace(secret, "***")
            exc_text = exc_text.replace(secret, "***")
        record.msg, record.args = text, None
        if record.exc_info:
            record.exc_info, record.exc_text = None, None
            record.__dict__["exc"] = exc_text
        for key, value in extras.items():
            rendered = str(value)
            if any(s in rendered for s in self._secrets):
                for secret in self._secrets:
                    rendered = rendered.replace(secret, "***")
                record.__dict__[key] = rendered
        return True


def setup_logging(
    *,
    fmt: str = "json",
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure the root logger once; later calls replace the handler (tests, reloads)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(SecretScrubber(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # grpc and httpx log per request at INFO/DEBUG; keep them at warning unless asked for debug.
    for noisy in ("httpx", "httpcore", "hpack", "grpc"):
        logging.getLogger(noisy).setLevel("DEBUG" if level.lower() == "debug" else "WARNING")
