"""Google service accounts: the JWT-bearer grant (RFC 7523) from a credentials JSON file.

The assertion is what google-auth sends: ``iss`` = the service account's e-mail, ``scope``, ``aud``
= the token URI, ``iat`` and ``exp`` = ``iat`` + 1 h, signed RS256 with the key id in the header.
The file is re-read at each token request, so a rotated key is picked up.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agent.config.files import read_text_file
from agent.credentials.assertions import load_rsa_key, sign_rs256
from agent.credentials.cache import RefreshFailed, Token
from agent.credentials.endpoint import display_url, parse_oauth_token, require_secure_url
from agent.credentials.refreshing import RefreshingBearer
from agent.errors import ConfigError

__all__ = ["GoogleServiceAccount", "read_service_account"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
_LIFETIME = 3600


def read_service_account(path: Path) -> dict[str, str]:
    """The fields we need from a service-account key file; ValueError/OSError say what is wrong."""
    data: Any = json.loads(read_text_file(path))
    if not isinstance(data, dict) or data.get("type") != "service_account":
        raise ValueError(f'file {path} is not a service-account key ("type": "service_account")')
    missing = [k for k in ("client_email", "private_key") if not isinstance(data.get(k), str)]
    if missing:
        raise ValueError(f"file {path} lacks {', '.join(missing)}")
    load_rsa_key(data["private_key"], what=f"private_key in {path}")
    return {
        "client_email": data["client_email"],
        "private_key": data["private_key"],
        "private_key_id": str(data.get("private_key_id") or ""),
        "token_uri": str(data.get("token_uri") or _DEFAULT_TOKEN_URI),
    }


class GoogleServiceAccount(RefreshingBearer):
    """Access tokens for a Google service account."""

    def __init__(self, *, credentials_file: str, scopes: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._file = Path(credentials_file)
        self._scopes = " ".join(scopes)

    def shared_identity(self) -> str:
        return f"google|{self._file}|{self._scopes}"

    async def fetch(self) -> Token[str]:
        try:
            account = read_service_account(self._file)
            # The URI comes from a file, not a validated config field: hold it to the https rule.
            require_secure_url(account["token_uri"], path="token_uri")
        except (OSError, ValueError) as exc:
            raise RefreshFailed(f"credentials_file: {exc}") from None
        except ConfigError as exc:
            raise RefreshFailed(f"credentials_file {self._file}: {exc.problems[0]}") from None
        now = int(time.time())
        claims = {
            "iss": account["client_email"],
            "scope": self._scopes,
            "aud": account["token_uri"],
            "iat": now,
            "exp": now + _LIFETIME,
        }
        assertion = sign_rs256(
            claims,
            account["private_key"],
            what=f"private_key in {self._file}",
            kid=account["private_key_id"] or None,
        )
        url = account["token_uri"]
        response = await self.client.post(
            url, data={"grant_type": JWT_BEARER, "assertion": assertion}
        )
        return parse_oauth_token(response, endpoint=display_url(url))
