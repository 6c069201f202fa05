"""The agent's configuration: models, loading, references, presets and the ``Secret`` type.

Load a file with ``load_config`` (or data with ``parse_config``); without a file,
``default_config`` enables the preset of every service whose environment variable is set.
Every problem of a configuration is reported at once in one ``ConfigError``, located by the
dotted path of the key in the user's file. Nothing here imports the rest of the agent but
``agent.errors``.
"""

from .auth import (
    AUTH_MODELS,
    AuthConfig,
    AwsSigV4Auth,
    AzureAdAuth,
    BasicAuth,
    BearerAuth,
    GithubAppAuth,
    GoogleServiceAccountAuth,
    HeaderAuth,
    KubernetesAuth,
    NoAuth,
    OAuth2ClientCredentialsAuth,
    OAuth2RefreshTokenAuth,
)
from .defaults import default_config
from .loader import load_config, parse_config
from .models import (
    CallerConfig,
    Config,
    IntegrationConfig,
    ListenConfig,
    RedisConfig,
    ServerConfig,
    TelemetryConfig,
    TransportConfig,
)
from .policies import (
    CacheConfig,
    CallerRateLimit,
    CircuitBreakerConfig,
    RateLimitConfig,
    RetryConfig,
)
from .presets import PRESET_ALIASES, PRESETS, Preset, resolve_preset_name
from .redact import redacted_dump, secret_values
from .secret import MASK, Secret
from .units import parse_duration, parse_size

__all__ = [
    "AUTH_MODELS",
    "MASK",
    "PRESETS",
    "PRESET_ALIASES",
    "AuthConfig",
    "AwsSigV4Auth",
    "AzureAdAuth",
    "BasicAuth",
    "BearerAuth",
    "CacheConfig",
    "CallerConfig",
    "CallerRateLimit",
    "CircuitBreakerConfig",
    "Config",
    "GithubAppAuth",
    "GoogleServiceAccountAuth",
    "HeaderAuth",
    "IntegrationConfig",
    "KubernetesAuth",
    "ListenConfig",
    "NoAuth",
    "OAuth2ClientCredentialsAuth",
    "OAuth2RefreshTokenAuth",
    "Preset",
    "RateLimitConfig",
    "RedisConfig",
    "RetryConfig",
    "Secret",
    "ServerConfig",
    "TelemetryConfig",
    "TransportConfig",
    "default_config",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
    "redacted_dump",
    "resolve_preset_name",
    "secret_values",
]
