"""The configuration models: ``Config`` and the sections it is made of (SPEC.md "Configuration").

Each model validates what it can see by itself; checks that span sections (fallback names,
callers' ``allow`` lists, ``scope: global`` needing Redis...) live in ``checks.py`` and run both
from the loader (so every problem is reported at once) and from ``Config`` itself.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from .auth import AuthConfig, NoAuth
from .base import FrozenModel, check_http_url, field_error
from .checks import IntegrationRefs, cross_check
from .policies import CacheConfig, CircuitBreakerConfig, RateLimitConfig, RetryConfig
from .presets import PRESETS, resolve_preset_name
from .problems import format_path
from .secret import MASK, Secret
from .units import Duration, Size

__all__ = [
    "CallerConfig",
    "Config",
    "IntegrationConfig",
    "ListenConfig",
    "RedisConfig",
    "ServerConfig",
    "TelemetryConfig",
    "TransportConfig",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOSTNAME = re.compile(r"[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?")
#: Headers the agent (or httpx) manages; a static value would break framing or routing.
_MANAGED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)


def _header_name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError("is not a valid HTTP header name (letters, digits and -)")
    if name.lower() in _MANAGED_HEADERS:
        raise ValueError("is managed by the agent (framing, routing); remove it")
    return name


def _header_value(value: str) -> str:
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError("contains CR, LF or NUL")
    return value


def _path_prefix(prefix: str) -> str:
    if not prefix.startswith("/") or "?" in prefix or "#" in prefix:
        raise ValueError(
            "is not a path prefix; write it like /chat/completions (relative to base_url, no query)"
        )
    if ".." in prefix.split("/"):
        raise ValueError("must not contain '..'")
    return prefix


# Messages never repeat these values: they may come from ${env:...} or ${file:...}.
_HeaderName = Annotated[str, AfterValidator(_header_name)]
_HeaderValue = Annotated[str, AfterValidator(_header_value)]
_PathPrefix = Annotated[str, AfterValidator(_path_prefix)]


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{what} must start with a letter or digit and use only letters, digits, "
            "'_', '-' and '.'"
        )
    return value


class ListenConfig(FrozenModel):
    """Where the gRPC server listens: ``host:port``, ``[::1]:port`` or ``unix:///path``."""

    grpc: str = "127.0.0.1:50051"

    @field_validator("grpc")
    @classmethod
    def _address(cls, value: str) -> str:
        example = "use host:port (127.0.0.1:50051, [::1]:50051, 0.0.0.0:50051) or unix:///path"
        if value.startswith("unix:"):
            if not value[len("unix:") :].lstrip("/"):
                raise ValueError(f"unix socket address has no path; {example}")
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"is not a listen address; {example}")
        if not port.isdigit() or int(port) > 65535:
            raise ValueError(f"port must be a number from 0 to 65535; {example}")
        if host.startswith("["):
            if not host.endswith("]"):
                raise ValueError(f"IPv6 address is missing its ']'; {example}")
            try:
                ipaddress.IPv6Address(host[1:-1])
            except ValueError:
                raise ValueError(f"is not a valid IPv6 address; {example}") from None
        elif ":" in host:
            raise ValueError(f"IPv6 addresses need brackets, e.g. [::1]:50051; {example}")
        elif not _HOSTNAME.fullmatch(host):
            raise ValueError(f"host is not a valid name or address; {example}")
        return value

    @property
    def is_unix(self) -> bool:
        """True for a Unix-domain socket address."""
        return self.grpc.startswith("unix:")


class ServerConfig(FrozenModel):
    """The agent's own server behaviour (extension of SPEC.md)."""

    grace_period: Annotated[Duration, Field(ge=0)] = 20.0
    """Seconds in-flight calls may take to finish after SIGTERM before the process exits."""


class CallerConfig(FrozenModel):
    """An app allowed to call the agent, identified by its bearer token."""

    name: str
    token: Secret
    allow: tuple[str, ...] = ("*",)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value, "a caller name")

    def allows(self, integration: str) -> bool:
        """Whether this caller may use ``integration``."""
        return "*" in self.allow or integration in self.allow


class RedisConfig(FrozenModel):
    """The shared Redis for global limits and token caches; its URL may hold a password.

    ``on_unavailable``: what ``scope: global`` limits do while Redis cannot be reached -- ``local``
    (each agent enforces ``local_share`` x the global rate, burst and token budget on its own) or
    ``deny`` (calls fail with UNAVAILABLE ``RATE_LIMITER_UNAVAILABLE``). ``connect_timeout`` and
    ``timeout`` bound every connection attempt and command, so no call hangs on Redis.
    ``token_cache_key`` (>= 16 characters, e.g. ``${file:/run/secrets/kilo-cache-key}``) keys the
    AES-GCM encryption of tokens cached in Redis; without it replicas share only the refresh lock.
    """

    url: Secret
    on_unavailable: Literal["local", "deny"] = "local"
    local_share: Annotated[float, Field(gt=0, le=1)] = 0.1
    connect_timeout: Annotated[Duration, Field(gt=0, le=30)] = 0.25
    timeout: Annotated[Duration, Field(gt=0, le=30)] = 0.25
    key_prefix: Annotated[str, Field(max_length=64)] = "kilo:"
    token_cache_key: Secret | None = None

    @field_validator("key_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        if any(ch in value for ch in "{} \t\r\n"):
            raise ValueError("must not contain braces or whitespace (braces pick the hash slot)")
        return value

    @field_validator("token_cache_key")
    @classmethod
    def _cache_key(cls, value: Secret | None) -> Secret | None:
        if value is not None and len(value.get()) < 16:
            raise ValueError(
                "is too short to key AES-GCM: use at least 16 random characters "
                "(e.g. `openssl rand -base64 32`)"
            )
        return value

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: Secret) -> Secret:
        try:
            parts = urlsplit(value.get())
            _ = parts.port  # raises ValueError on a bad port
        except ValueError:
            raise ValueError("is not a valid URL; e.g. redis://127.0.0.1:6379/0") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be redis://host:port/db, rediss:// (TLS) or unix:///path.sock")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("has no host; e.g. redis://127.0.0.1:6379/0")
        return value

    def display_url(self) -> str:
        """The URL with any password replaced by ``***``, safe to log."""
        parts = urlsplit(self.url.get())
        if parts.password is None:
            return self.url.get()
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return parts._replace(netloc=f"{user}:{MASK}@{host}").geturl()


class TelemetryConfig(FrozenModel):
    """Audit log destination and trace propagation."""

    audit_log: str = "stdout"
    propagate_trace_context: bool = False

    @field_validator("audit_log", mode="before")
    @classmethod
    def _audit_log(cls, value: object) -> object:
        if value is False:  # YAML 1.1 reads an unquoted `off` as false
            return "off"
        if value is True:
            return "stdout"
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty; use stdout, stderr, off or a file path")
        return value


class TransportConfig(FrozenModel):
    """The HTTP client of one integration (extension): pool sizes, HTTP/2, TLS verification.

    ``http2: false`` (default) sends HTTP/1.1 through aiohttp's pool (the cheapest per call);
    ``http2: true`` uses httpx's own transport and multiplexes over one TLS connection to
    upstreams that offer HTTP/2. ``ca_file`` adds a CA bundle to verify the upstream with; it is
    ignored with ``verify: false``.
    """

    http2: bool = False
    max_connections: Annotated[int, Field(ge=1)] = 64
    max_keepalive_connections: Annotated[int, Field(ge=0)] = 32
    keepalive_expiry: Annotated[Duration, Field(ge=0)] = 30.0
    verify: bool = True
    ca_file: str | None = None

    @model_validator(mode="after")
    def _pool(self) -> Self:
        if self.max_keepalive_connections > self.max_connections:
            raise field_error("max_keepalive_connections", "must not exceed max_connections")
        return self


class IntegrationConfig(FrozenModel):
    """One third-party API: where it is, how to authenticate, and the policies of its calls."""

    preset: str | None = None
    base_url: str = ""
    webhook_url: Secret | None = None
    auth: AuthConfig = Field(default_factory=NoAuth)
    headers: dict[_HeaderName, _HeaderValue] = Field(default_factory=dict, repr=False)
    timeout: Annotated[Duration, Field(gt=0)] = 30.0
    max_body: Annotated[Size, Field(ge=1)] = 10 * 1024 * 1024
    allow_paths: tuple[_PathPrefix, ...] = ()
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    fallback: tuple[str, ...] = ()
    llm: str | None = None
    transport: TransportConfig = Field(default_factory=TransportConfig)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is None:
            return None
        canonical = resolve_preset_name(value)
        if canonical is None:
            close = difflib.get_close_matches(value, list(PRESETS), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"unknown preset '{value}'; {hint}known: {', '.join(PRESETS)}")
        return canonical

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return check_http_url(value).rstrip("/") if value else value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: Secret | None) -> Secret | None:
        if value is not None:
            check_http_url(value.get(), https_only=True, allow_query=True)
        return value

    @field_validator("fallback")
    @classmethod
    def _fallback(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists an integration twice")
        return value

    @field_validator("headers")
    @classmethod
    def _unique_headers(cls, value: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name in value:
            if name.lower() in seen:
                raise ValueError(f"'{name}' is given twice (header names ignore case)")
            seen.add(name.lower())
        return value

    @model_validator(mode="after")
    def _urls_and_headers(self) -> Self:
        if self.webhook_url is not None:
            parts = urlsplit(self.webhook_url.get())
            derived = f"{parts.scheme}://{parts.netloc}"
            if self.base_url and self.base_url != derived:
                raise field_error(
                    "base_url",
                    "give base_url or webhook_url, not both (a webhook's base URL is the "
                    "webhook URL itself)",
                )
            # Pydantic re-runs this validator on instances (e.g. inside Config): idempotent.
            object.__setattr__(self, "base_url", derived)
        elif not self.base_url:
            preset = PRESETS.get(self.preset or "")
            example = (
                preset.base_url_example
                if preset and preset.base_url_example
                else "https://api.example.com/v1"
            )
            why = f"preset '{preset.name}' has no fixed URL; " if preset else ""
            raise field_error("base_url", f"is required: {why}set it, e.g. {example}")
        injected = set(self.auth.injected_headers())
        for name in self.headers:
            if name.lower() in injected:
                raise field_error(
                    "headers",
                    f"'{name}' is set by auth (type {self.auth.type}); remove it from headers",
                )
        return self

    def effective_base_url(self) -> str:
        """The URL calls are made against: the webhook URL when set, else ``base_url``."""
        return self.webhook_url.get() if self.webhook_url is not None else self.base_url

    def display_base_url(self) -> str:
        """A base URL safe to log or show: a webhook's secret path is replaced by ``***``."""
        if self.webhook_url is not None:
            return f"{self.base_url}/{MASK}"
        return self.base_url


class Config(FrozenModel):
    """The whole agent configuration, validated and immutable."""

    listen: ListenConfig = Field(default_factory=ListenConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    callers: tuple[CallerConfig, ...] = ()
    redis: RedisConfig | None = None
    integrations: dict[str, IntegrationConfig] = Field(default_factory=dict)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)

    @model_validator(mode="after")
    def _cross_check(self) -> Self:
        problems = cross_check(
            callers=self.callers,
            integrations={name: IntegrationRefs.of(i) for name, i in self.integrations.items()},
            names=set(self.integrations),
            has_redis=self.redis is not None,
        )
        if problems:
            raise ValueError(
                "; ".join(f"{format_path(path)}: {message}" for path, message in problems)
            )
        return self

    def caller_by_token(self, token: str) -> CallerConfig | None:
        """The caller whose token is ``token`` (constant-time comparison), or None."""
        wanted = Secret(token)
        found = None
        for caller in self.callers:
            if caller.token == wanted:
                found = caller
        return found
