"""OAuth 2.0 grants: client credentials (RFC 6749 4.4), refresh token with rotation (RFC 9700).

Client authentication is ``client_secret_basic`` (RFC 6749 2.3.1: id and secret form-encoded,
then base64 in ``Authorization: Basic``) or ``client_secret_post`` (both in the form body).
Secrets from ``${file:}`` are re-read at each token request (rare, so no watcher is needed).

Refresh-token rotation: a server may answer a new ``refresh_token`` and kill the old one at its
first use (reuse detection then revokes the whole family), so the cache's single flight matters
here, and the newest token is kept -- and written atomically to ``state_file`` when configured,
so a restart does not fall back to the configured (already used) one. With a shared store
(Redis, encrypted) the newest refresh token also travels with the cached access token, so the
replica that refreshes next uses it rather than its own (already rotated away) copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from agent.config.files import read_secret
from agent.config.secret import Secret
from agent.credentials.cache import RefreshFailed, Token
from agent.credentials.endpoint import display_url, parse_oauth_response
from agent.credentials.refreshing import RefreshingBearer
from agent.credentials.static import basic_value

__all__ = ["OAuth2ClientCredentials", "OAuth2RefreshToken", "client_auth"]

_log = logging.getLogger("agent.credentials")


def client_auth(
    method: str, client_id: str, secret: str | None, form: dict[str, str]
) -> dict[str, str]:
    """Add client authentication to ``form`` (post) or return the Basic header (basic)."""
    if secret is None:  # a public client identifies itself in the body
        form["client_id"] = client_id
        return {}
    if method == "client_secret_post":
        form["client_id"] = client_id
        form["client_secret"] = secret
        return {}
    return {"Authorization": basic_value(quote_plus(client_id), quote_plus(secret))}


def current_secret(secret: Secret, what: str) -> str:
    """The secret's value now (re-read from its file); failures become RefreshFailed."""
    try:
        return read_secret(secret)
    except (OSError, ValueError) as exc:
        raise RefreshFailed(f"{what}: {exc}") from None


class OAuth2ClientCredentials(RefreshingBearer):
    """``grant_type=client_credentials`` with optional ``scope`` and ``audience``."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        scope: str = "",
        audience: str = "",
        client_auth: str = "client_secret_basic",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._url = token_url
        self._endpoint = display_url(token_url)
        self._client_id = client_id
        self._secret = client_secret
        self._scope = scope
        self._audience = audience
        self._auth = client_auth

    def shared_identity(self) -> str:
        return f"client_credentials|{self._url}|{self._client_id}|{self._scope}|{self._audience}"

    async def fetch(self) -> Token[str]:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        if self._audience:
            form["audience"] = self._audience
        secret = current_secret(self._secret, "client_secret")
        headers = client_auth(self._auth, self._client_id, secret, form)
        response = await self.client.post(self._url, data=form, headers=headers)
        return parse_oauth_response(response, endpoint=self._endpoint)[0]


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class OAuth2RefreshToken(RefreshingBearer):
    """``grant_type=refresh_token``, keeping the newest refresh token (and saving it)."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        refresh_token: Secret,
        client_secret: Secret | None = None,
        client_auth: str = "client_secret_basic",
        state_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._url = token_url
        self._endpoint = display_url(token_url)
        self._client_id = client_id
        self._secret = client_secret
        self._auth = client_auth
        self._configured = refresh_token
        self._state_file = Path(state_file) if state_file else None
        self._refresh_token = ""
        self._configured_fp = ""
        self._loaded = False
        self._save_failed = False

    async def start(self) -> None:
        self._load()
        if self.shared is not None and not self.shared.holds_tokens:
            _log.warning(
                "integration '%s' rotates its refresh token, and redis has no token_cache_key: "
                "replicas share the refresh lock but not the newest refresh token, so a second "
                "replica would reuse a rotated one; set redis.token_cache_key",
                self.integration,
                extra={"integration": self.integration},
            )
        await super().start()

    def _load(self) -> None:
        """Pick the refresh token to use: the saved newest one, unless the configured changed."""
        if self._loaded:
            return
        self._loaded = True
        configured = self._configured.get()
        self._refresh_token, self._configured_fp = configured, _fingerprint(configured)
        if self._state_file is None:
            return
        try:
            saved = json.loads(self._state_file.read_text("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            _log.warning(
                "refresh-token state file %s of integration '%s' is unreadable (%s); starting "
                "from the configured refresh_token",
                self._state_file,
                self.integration,
                type(exc).__name__,
                extra={"integration": self.integration},
            )
            return
        token = saved.get("refresh_token") if isinstance(saved, dict) else None
        if isinstance(token, str) and token and saved.get("configured") == self._configured_fp:
            self._refresh_token = token  # the configured one was rotated away before a restart

    def shared_identity(self) -> str:
        return f"refresh_token|{self._url}|{self._client_id}"

    def export_state(self) -> Mapping[str, str]:
        self._load()
        return {"refresh_token": self._refresh_token, "configured": self._configured_fp}

    def import_state(self, state: Mapping[str, str]) -> None:
        """Adopt the refresh token another replica rotated to (same configured one only)."""
        self._load()
        token = state.get("refresh_token")
        if (
            token
            and token != self._refresh_token
            and state.get("configured") == self._configured_fp
        ):
            self._refresh_token = token
            if self._state_file is not None:
                self._save(token)

    async def fetch(self) -> Token[str]:
        self._load()
        configured = current_secret(self._configured, "refresh_token")
        if _fingerprint(configured) != self._configured_fp:
            # The operator put a new refresh token in the (file-backed) config: it wins.
            self._refresh_token, self._configured_fp = configured, _fingerprint(configured)
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
        secret = None if self._secret is None else current_secret(self._secret, "client_secret")
        headers = client_auth(self._auth, self._client_id, secret, form)
        response = await self.client.post(self._url, data=form, headers=headers)
        try:
            token, data = parse_oauth_response(response, endpoint=self._endpoint)
        except RefreshFailed as exc:
            if "invalid_grant" in exc.reason:
                raise RefreshFailed(
                    f"{exc.reason} (the refresh token was revoked, expired or already used: "
                    "authorize again and put the new one in refresh_token)"
                ) from None
            raise
        rotated = data.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            self._refresh_token = rotated
            if self._state_file is not None:
                await asyncio.to_thread(self._save, rotated)
        return token

    def _save(self, token: str) -> None:
        """Write the state file atomically (temp file, fsync, rename), readable by us only."""
        assert self._state_file is not None
        target = self._state_file
        payload = json.dumps({"refresh_token": token, "configured": self._configured_fp})
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    os.fchmod(handle.fileno(), 0o600)
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            with contextlib.suppress(OSError):  # make the rename itself durable
                dir_fd = os.open(target.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            if self._save_failed:
                return  # reported once
            self._save_failed = True
            _log.warning(
                "could not save the rotated refresh token of integration '%s' to %s (%s); "
                "a restart would reuse an old one",
                self.integration,
                target,
                type(exc).__name__,
                extra={"integration": self.integration},
            )
        else:
            self._save_failed = False
