"""Microsoft Entra ID (Azure AD): client credentials with a client secret or, for workload
identity, the federated token file sent as a ``client_assertion``.

The federated token (a Kubernetes-issued JWT the kubelet rotates) is re-read at each token
request, as azure-identity does. Entra answers ``expires_in`` and sometimes ``refresh_in``; the
cache honours the earlier of that hint and its own margin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config.files import read_text_file
from agent.config.secret import Secret
from agent.credentials.cache import RefreshFailed, Token
from agent.credentials.endpoint import display_url, parse_oauth_token
from agent.credentials.oauth2 import current_secret
from agent.credentials.refreshing import RefreshingBearer

__all__ = ["CLIENT_ASSERTION_TYPE", "AzureAd", "azure_token_url"]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def azure_token_url(authority: str, tenant_id: str) -> str:
    return f"{authority.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"


class AzureAd(RefreshingBearer):
    """Entra ID access tokens for one app registration and scope."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        scope: str,
        client_secret: Secret | None = None,
        federated_token_file: str | None = None,
        authority: str = "https://login.microsoftonline.com",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._url = azure_token_url(authority, tenant_id)
        self._endpoint = display_url(self._url)
        self._client_id = client_id
        self._scope = scope
        self._secret = client_secret
        self._assertion_file = Path(federated_token_file) if federated_token_file else None

    def shared_identity(self) -> str:
        return f"azure_ad|{self._url}|{self._client_id}|{self._scope}"

    async def fetch(self) -> Token[str]:
        form = {"grant_type": "client_credentials", "client_id": self._client_id}
        form["scope"] = self._scope
        if self._assertion_file is not None:
            try:
                assertion = read_text_file(self._assertion_file)
            except (OSError, ValueError) as exc:
                raise RefreshFailed(f"federated_token_file: {exc}") from None
            form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
            form["client_assertion"] = assertion
        else:
            assert self._secret is not None
            form["client_secret"] = current_secret(self._secret, "client_secret")
        response = await self.client.post(self._url, data=form)
        return parse_oauth_token(response, endpoint=self._endpoint)
