"""GitHub Apps: an RS256 app JWT exchanged for an installation access token (valid one hour).

The app JWT follows GitHub's rules: ``iat`` 60 s in the past (clock drift), ``exp`` under 10
minutes ahead, ``iss`` = the app id (or client id). The installation token answer carries an
absolute ``expires_at``.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from agent.config.secret import Secret
from agent.credentials.assertions import sign_rs256
from agent.credentials.cache import RefreshFailed, Token
from agent.credentials.endpoint import display_url, json_object, oauth_error
from agent.credentials.oauth2 import current_secret
from agent.credentials.refreshing import RefreshingBearer

__all__ = ["GithubApp"]


class GithubApp(RefreshingBearer):
    """Installation access tokens of one GitHub App installation."""

    def __init__(
        self,
        *,
        app_id: str,
        private_key: Secret,
        installation_id: str,
        api_url: str = "https://api.github.com",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._app_id = app_id
        self._key = private_key
        self._url = f"{api_url.rstrip('/')}/app/installations/{installation_id}/access_tokens"
        self._endpoint = display_url(self._url)

    def app_jwt(self) -> str:
        now = int(time.time())
        pem = current_secret(self._key, "private_key")
        claims = {"iat": now - 60, "exp": now + 540, "iss": self._app_id}
        return sign_rs256(claims, pem, what="private_key")

    def shared_identity(self) -> str:
        return f"github_app|{self._app_id}|{self._url}"

    async def fetch(self) -> Token[str]:
        headers = {
            "Authorization": f"Bearer {self.app_jwt()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        response = await self.client.post(self._url, headers=headers)
        if response.status_code not in (200, 201):
            raise RefreshFailed(
                f"GitHub endpoint {self._endpoint} answered {response.status_code}"
                f"{oauth_error(response)}"
            )
        data = json_object(response, endpoint=self._endpoint)
        token = data.get("token")
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n\0"):
            raise RefreshFailed(f"GitHub endpoint {self._endpoint} answered without a token")
        lifetime = None
        expires = data.get("expires_at")
        if isinstance(expires, str):
            try:
                when = datetime.fromisoformat(expires.replace("Z", "+00:00"))
            except ValueError:
                when = None
            if when is not None and when.tzinfo is not None:
                lifetime = when.timestamp() - time.time()
        return Token(token, lifetime=lifetime if lifetime is not None else 3600.0)
