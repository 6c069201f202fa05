"""Credential providers, one per auth scheme, behind :class:`CredentialProvider`.

``build_provider`` turns an integration's validated ``auth`` block into its provider. Static
schemes inject a fixed header (re-read when its ``${file:}`` changes); token schemes sit on the
single-flight :class:`RefreshingCache` (``cache.py``), which refreshes ahead of expiry, retries
with backoff and reports state.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from agent.config.files import read_secret, secret_files
from agent.credentials.azure import AzureAd, azure_token_url
from agent.credentials.base import CredentialProvider
from agent.credentials.cache import RefreshFailed, RefreshingCache, RefreshPolicy, Token
from agent.credentials.endpoint import require_secure_url
from agent.credentials.oauth2 import OAuth2ClientCredentials, OAuth2RefreshToken
from agent.credentials.shared import (
    SharedFetch,
    SharedLockBusy,
    SharedStoreUnavailable,
    SharedToken,
    SharedTokenStore,
)
from agent.credentials.static import NoCredentials, StaticHeader, basic_value
from agent.errors import ConfigError, ConfigProblem
from agent.events import EventHub

# Providers whose modules pull in botocore or PyJWT/cryptography (~30 MiB resident between
# them) are imported on first use, so an agent that needs none of them doesn't carry them.
_LAZY = {
    "AwsSigV4": "agent.credentials.aws",
    "default_sts_endpoint": "agent.credentials.aws",
    "GithubApp": "agent.credentials.github",
    "GoogleServiceAccount": "agent.credentials.google",
    "read_service_account": "agent.credentials.google",
    "KubernetesToken": "agent.credentials.kubernetes",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AwsSigV4",
    "AzureAd",
    "CredentialProvider",
    "GithubApp",
    "GoogleServiceAccount",
    "KubernetesToken",
    "NoCredentials",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "RefreshFailed",
    "RefreshPolicy",
    "RefreshingCache",
    "SharedFetch",
    "SharedLockBusy",
    "SharedStoreUnavailable",
    "SharedToken",
    "SharedTokenStore",
    "StaticHeader",
    "Token",
    "build_provider",
    "transport_ca_file",
]


def _name_from(path: str) -> str:
    parts = path.split(".")
    return parts[1] if len(parts) >= 3 and parts[0] == "integrations" else path


def transport_ca_file(auth: Any) -> str | None:
    """The CA bundle the integration's transport should trust because of its auth (Kubernetes)."""
    if getattr(auth, "type", "") == "kubernetes":
        ca: str | None = auth.ca_file
        return ca
    return None


def build_provider(
    auth: Any,
    *,
    path: str,
    name: str = "",
    hub: EventHub | None = None,
    policy: RefreshPolicy | None = None,
    poll_interval: float = 1.0,
    shared: SharedTokenStore | None = None,
) -> CredentialProvider:
    """Build the provider for one integration's ``auth`` block (a validated config model).

    ``path`` locates the block in the config file for error messages; ``name`` is the
    integration's name (default: taken from ``path``); ``hub`` receives refresh and state
    events; ``policy`` and ``poll_interval`` tune refresh and file watching (tests shrink them);
    ``shared`` (a ``SharedTokenStore``, e.g. Redis) makes token refreshes fleet-wide.
    """
    name = name or _name_from(path)
    try:
        return _build(auth, path, name, hub, policy, poll_interval, shared)
    except (OSError, ValueError) as exc:
        raise ConfigError([ConfigProblem(path, str(exc))]) from None


def _static(auth: Any, name: str, poll_interval: float) -> CredentialProvider:
    kind = auth.type
    if kind == "bearer":
        token = auth.token
        return StaticHeader(
            "authorization",
            f"Bearer {token.get()}",
            render=lambda: f"Bearer {read_secret(token)}",
            watch=secret_files(token),
            integration=name,
            poll_interval=poll_interval,
        )
    if kind == "header":
        value, prefix = auth.value, auth.prefix
        return StaticHeader(
            auth.header,
            f"{prefix}{value.get()}",
            render=lambda: f"{prefix}{read_secret(value)}",
            watch=secret_files(value),
            integration=name,
            poll_interval=poll_interval,
        )
    user, password = auth.username, auth.password
    return StaticHeader(
        "authorization",
        basic_value(user, password.get()),
        render=lambda: basic_value(user, read_secret(password)),
        watch=secret_files(password),
        integration=name,
        poll_interval=poll_interval,
    )


def _build(
    auth: Any,
    path: str,
    name: str,
    hub: EventHub | None,
    policy: RefreshPolicy | None,
    poll_interval: float,
    shared: SharedTokenStore | None = None,
) -> CredentialProvider:
    kind = getattr(auth, "type", "none")
    common: dict[str, Any] = {"integration": name, "hub": hub, "policy": policy}
    # Token providers on RefreshingBearer share through the store; AWS keys stay per agent.
    bearer = {**common, "shared": shared}
    if kind == "none":
        return NoCredentials()
    if kind in ("bearer", "header", "basic"):
        return _static(auth, name, poll_interval)
    if kind == "oauth2_client_credentials":
        return OAuth2ClientCredentials(
            token_url=require_secure_url(auth.token_url, path=f"{path}.token_url"),
            client_id=auth.client_id,
            client_secret=auth.client_secret,
            scope=auth.scope,
            audience=auth.audience,
            client_auth=auth.client_auth,
            **bearer,
        )
    if kind == "oauth2_refresh_token":
        return OAuth2RefreshToken(
            token_url=require_secure_url(auth.token_url, path=f"{path}.token_url"),
            client_id=auth.client_id,
            client_secret=auth.client_secret,
            refresh_token=auth.refresh_token,
            client_auth=getattr(auth, "client_auth", "client_secret_basic"),
            state_file=auth.state_file,
            **bearer,
        )
    if kind == "google_service_account":
        from agent.credentials.google import GoogleServiceAccount

        account = _service_account(auth.credentials_file, path)
        require_secure_url(account["token_uri"], path=f"{path}.credentials_file")
        return GoogleServiceAccount(
            credentials_file=auth.credentials_file, scopes=tuple(auth.scopes), **bearer
        )
    if kind == "github_app":
        from agent.credentials.github import GithubApp

        require_secure_url(auth.api_url, path=f"{path}.api_url")
        provider = GithubApp(
            app_id=auth.app_id,
            private_key=auth.private_key,
            installation_id=auth.installation_id,
            api_url=auth.api_url,
            **bearer,
        )
        try:
            provider.app_jwt()  # a bad key is a configuration error, found at start-up
        except RefreshFailed as exc:
            raise ConfigError([ConfigProblem(f"{path}.private_key", exc.reason)]) from None
        return provider
    if kind == "azure_ad":
        require_secure_url(
            azure_token_url(auth.authority, auth.tenant_id), path=f"{path}.authority"
        )
        return AzureAd(
            tenant_id=auth.tenant_id,
            client_id=auth.client_id,
            scope=auth.scope,
            client_secret=auth.client_secret,
            federated_token_file=auth.federated_token_file,
            authority=auth.authority,
            **bearer,
        )
    if kind == "aws_sigv4":
        from agent.credentials.aws import AwsSigV4, default_sts_endpoint

        sts = getattr(auth, "sts_endpoint", None)
        if auth.role_arn is not None:
            sts = require_secure_url(
                sts or default_sts_endpoint(auth.region), path=f"{path}.role_arn"
            )
        return AwsSigV4(
            region=auth.region,
            service=auth.service,
            access_key_id=auth.access_key_id,
            secret_access_key=auth.secret_access_key,
            session_token=auth.session_token,
            role_arn=auth.role_arn,
            web_identity_token_file=auth.web_identity_token_file,
            sts_endpoint=sts,
            poll_interval=poll_interval,
            **common,
        )
    if kind == "kubernetes":
        from agent.credentials.kubernetes import KubernetesToken

        try:
            return KubernetesToken(
                token_file=auth.token_file, integration=name, poll_interval=poll_interval
            )
        except (OSError, ValueError) as exc:
            raise ConfigError([ConfigProblem(f"{path}.token_file", str(exc))]) from None
    raise ConfigError([ConfigProblem(f"{path}.type", f"unknown auth type '{kind}'")])


def _service_account(file: str, path: str) -> dict[str, str]:
    from agent.credentials.google import read_service_account

    try:
        return read_service_account(Path(file))
    except (OSError, ValueError) as exc:
        raise ConfigError([ConfigProblem(f"{path}.credentials_file", str(exc))]) from None
