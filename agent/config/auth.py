"""How an integration authenticates upstream: one model per ``auth.type``.

``AuthConfig`` is the union discriminated on ``type``. Each model says which request headers the
agent injects (``secret_header()`` / ``injected_headers()``), so the engine can refuse callers
that try to send those headers themselves. Token endpoints must be https (http only on loopback):
a client secret must never cross the network in clear.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from .base import FrozenModel, check_http_url, field_error
from .secret import Secret

__all__ = [
    "AUTH_MODELS",
    "AuthConfig",
    "AwsSigV4Auth",
    "AzureAdAuth",
    "BasicAuth",
    "BearerAuth",
    "GithubAppAuth",
    "GoogleServiceAccountAuth",
    "HeaderAuth",
    "KubernetesAuth",
    "NoAuth",
    "OAuth2ClientCredentialsAuth",
    "OAuth2RefreshTokenAuth",
]

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_AUTHORIZATION = ("authorization",)
_NonEmpty = Annotated[str, Field(min_length=1)]


def _token_url(value: str) -> str:
    return check_http_url(value, https_only=True, allow_query=True)


class _Auth(FrozenModel):
    """Common interface of the auth models."""

    def secret_header(self) -> str | None:
        """Lower-case name of the header carrying the credential, or None."""
        return "authorization"

    def injected_headers(self) -> tuple[str, ...]:
        """Every lower-case header name the agent sets for this scheme (callers may not)."""
        header = self.secret_header()
        return (header,) if header else ()


class NoAuth(_Auth):
    """No credential: public APIs, and webhooks whose URL is the secret."""

    type: Literal["none"] = "none"

    def secret_header(self) -> str | None:
        return None


class BearerAuth(_Auth):
    """``Authorization: Bearer <token>`` with a static token."""

    type: Literal["bearer"] = "bearer"
    token: Secret


class HeaderAuth(_Auth):
    """A static credential in a named header: ``x-api-key: <key>``, ``Authorization: Bot <t>``."""

    type: Literal["header"] = "header"
    header: _NonEmpty
    value: Secret
    prefix: str = ""

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _HEADER_NAME.fullmatch(value):
            raise ValueError("is not a valid HTTP header name (letters, digits and -)")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError("must not contain CR, LF or NUL")
        return value

    def secret_header(self) -> str | None:
        return self.header.lower()


class BasicAuth(_Auth):
    """HTTP basic authentication."""

    type: Literal["basic"] = "basic"
    username: str
    password: Secret

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if ":" in value:
            raise ValueError("must not contain ':' (basic auth separates user and password by it)")
        return value


class OAuth2ClientCredentialsAuth(_Auth):
    """OAuth 2.0 client credentials grant (RFC 6749 4.4); the token is fetched and cached."""

    type: Literal["oauth2_client_credentials"] = "oauth2_client_credentials"
    token_url: str
    client_id: _NonEmpty
    client_secret: Secret
    scope: str = ""
    audience: str = ""
    client_auth: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"

    @field_validator("token_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _token_url(value)


class OAuth2RefreshTokenAuth(_Auth):
    """OAuth 2.0 refresh-token grant; a rotated refresh token is kept in ``state_file``."""

    type: Literal["oauth2_refresh_token"] = "oauth2_refresh_token"
    token_url: str
    client_id: _NonEmpty
    client_secret: Secret | None = None
    refresh_token: Secret
    state_file: str | None = None

    @field_validator("token_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _token_url(value)


class GoogleServiceAccountAuth(_Auth):
    """A Google service-account key file, exchanged for access tokens (JWT bearer grant)."""

    type: Literal["google_service_account"] = "google_service_account"
    credentials_file: _NonEmpty
    scopes: tuple[_NonEmpty, ...] = ("https://www.googleapis.com/auth/cloud-platform",)


class GithubAppAuth(_Auth):
    """A GitHub App: an RS256 JWT exchanged for an installation token (valid one hour)."""

    type: Literal["github_app"] = "github_app"
    app_id: _NonEmpty
    private_key: Secret
    installation_id: _NonEmpty
    api_url: str = "https://api.github.com"

    @field_validator("api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _token_url(value)


class AzureAdAuth(_Auth):
    """Microsoft Entra ID (Azure AD): a client secret or a workload-identity token file."""

    type: Literal["azure_ad"] = "azure_ad"
    tenant_id: _NonEmpty
    client_id: _NonEmpty
    client_secret: Secret | None = None
    federated_token_file: str | None = None
    scope: _NonEmpty
    authority: str = "https://login.microsoftonline.com"

    @field_validator("authority")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _token_url(value)

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if (self.client_secret is None) == (self.federated_token_file is None):
            raise field_error(
                "client_secret",
                "give exactly one of client_secret and federated_token_file "
                "(workload identity: federated_token_file: ${AZURE_FEDERATED_TOKEN_FILE})",
            )
        return self


class AwsSigV4Auth(_Auth):
    """AWS Signature Version 4: static keys, or a role assumed with a web-identity token (IRSA)."""

    type: Literal["aws_sigv4"] = "aws_sigv4"
    region: _NonEmpty
    service: _NonEmpty
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None
    role_arn: str | None = None
    web_identity_token_file: str | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        static = self.access_key_id is not None or self.secret_access_key is not None
        role = self.role_arn is not None or self.web_identity_token_file is not None
        if static and role:
            raise field_error(
                "role_arn",
                "give either static keys (access_key_id, secret_access_key) or "
                "role_arn + web_identity_token_file, not both",
            )
        if static and (self.access_key_id is None or self.secret_access_key is None):
            missing = "access_key_id" if self.access_key_id is None else "secret_access_key"
            raise field_error(missing, "is required with static keys")
        if role and (self.role_arn is None or self.web_identity_token_file is None):
            missing = "role_arn" if self.role_arn is None else "web_identity_token_file"
            raise field_error(missing, "is required with a web-identity role (IRSA)")
        if not static and not role:
            raise field_error(
                "access_key_id",
                "give access_key_id + secret_access_key, or role_arn + "
                "web_identity_token_file (IRSA)",
            )
        if self.session_token is not None and not static:
            raise field_error("session_token", "only goes with static keys")
        return self

    def injected_headers(self) -> tuple[str, ...]:
        return ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256")


class KubernetesAuth(_Auth):
    """The pod's projected service-account token (re-read as the kubelet rotates it)."""

    type: Literal["kubernetes"] = "kubernetes"
    token_file: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
    ca_file: str | None = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"


#: The ``auth:`` block of an integration, chosen by its ``type``.
AuthConfig = Annotated[
    NoAuth
    | BearerAuth
    | HeaderAuth
    | BasicAuth
    | OAuth2ClientCredentialsAuth
    | OAuth2RefreshTokenAuth
    | GoogleServiceAccountAuth
    | GithubAppAuth
    | AzureAdAuth
    | AwsSigV4Auth
    | KubernetesAuth,
    Field(discriminator="type"),
]

#: ``type`` value -> model, for error messages and key suggestions.
AUTH_MODELS: dict[str, type[_Auth]] = {
    "none": NoAuth,
    "bearer": BearerAuth,
    "header": HeaderAuth,
    "basic": BasicAuth,
    "oauth2_client_credentials": OAuth2ClientCredentialsAuth,
    "oauth2_refresh_token": OAuth2RefreshTokenAuth,
    "google_service_account": GoogleServiceAccountAuth,
    "github_app": GithubAppAuth,
    "azure_ad": AzureAdAuth,
    "aws_sigv4": AwsSigV4Auth,
    "kubernetes": KubernetesAuth,
}
