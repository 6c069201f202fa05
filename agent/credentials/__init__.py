"""Credential providers, one per auth scheme, behind :class:`CredentialProvider`."""

from __future__ import annotations

from typing import Any

from agent.credentials.base import CredentialProvider
from agent.credentials.static import NoCredentials, StaticHeader
from agent.errors import ConfigError, ConfigProblem

__all__ = ["CredentialProvider", "NoCredentials", "StaticHeader", "build_provider"]


def build_provider(auth: Any, *, path: str) -> CredentialProvider:
    """Build the provider for one integration's ``auth`` block (a validated config model).

    ``path`` locates the block in the config file for error messages.
    """
    kind = getattr(auth, "type", "none")
    if kind == "none":
        return NoCredentials()
    if kind == "bearer":
        return StaticHeader.bearer(auth.token.get())
    if kind == "header":
        return StaticHeader(auth.header, f"{auth.prefix}{auth.value.get()}")
    if kind == "basic":
        return StaticHeader.basic(auth.username, auth.password.get())
    raise ConfigError(
        [
            ConfigProblem(
                f"{path}.type",
                f"auth type '{kind}' is accepted by the configuration schema but this build of "
                "the agent cannot obtain it yet (token refresh lands with the credentials "
                "issue); use bearer, header or basic with a token from ${env:} or ${file:}",
            )
        ]
    )
