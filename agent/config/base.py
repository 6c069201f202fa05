"""Shared building blocks of the config models: the frozen base model and field-located errors.

Every model is frozen (configuration is read-only once loaded), forbids unknown keys (a typo must
be an error, not a silently ignored setting) and hides its input in pydantic's own error text, so
that printing a ``ValidationError`` can never echo a secret.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

__all__ = [
    "FIELD_ERROR",
    "FrozenModel",
    "check_http_url",
    "field_error",
    "is_loopback_host",
]

#: pydantic error type of :func:`field_error`; the loader turns it into a problem at ``loc.field``.
FIELD_ERROR = "kilo_field_error"


class FrozenModel(BaseModel):
    """Base of every config model: immutable, strict about keys, silent about inputs."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        coerce_numbers_to_str=True,
        validate_default=False,
    )


def field_error(field: str, message: str) -> PydanticCustomError:
    """An error raised by a model validator but located at one of the model's fields.

    Pydantic locates model-validator errors at the model itself; the loader reads ``field`` from
    the context and reports the problem at ``<model path>.<field>``, where the user will look.
    """
    return PydanticCustomError(
        FIELD_ERROR, "{field}: {message}", {"field": field, "message": message}
    )


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_http_url(value: str, *, https_only: bool = False, allow_query: bool = False) -> str:
    """Validate an absolute http(s) URL and return it; the error never repeats the value.

    ``https_only`` still accepts ``http`` on loopback hosts (local token servers, tests, the demo).
    """
    example = "e.g. https://api.example.com/v1"
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError(f"must not contain spaces or control characters ({example})")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"is not a valid URL ({example})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http:// or https:// URL ({example})")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@); put them in 'auth'")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    if parts.query and not allow_query:
        raise ValueError(
            "must not have a ?query; add query parameters to each call's path "
            "(and credentials to 'auth')"
        )
    if https_only and parts.scheme != "https" and not is_loopback_host(parts.hostname):
        raise ValueError(
            "must use https:// (plain http:// is only accepted for loopback hosts: "
            "localhost, 127.0.0.0/8, ::1)"
        )
    return value
