"""AWS Signature Version 4 with botocore's signer: static keys, or IRSA (web identity -> STS).

Every attempt is signed afresh (a signature covers the time, the URL, the signed headers and the
body hash). The URL is signed exactly as httpx will send it (``str(httpx.URL(url))``), because
botocore signs the query as given while httpx percent-encodes it. S3 gets ``S3SigV4Auth`` (which
adds ``x-amz-content-sha256``).

IRSA: the web-identity token file (rotated by the kubelet, re-read each time) is exchanged at STS
``AssumeRoleWithWebIdentity`` (an unsigned call) for temporary keys; the answer is parsed with
botocore's own parser for STS's query protocol, and the keys are refreshed ahead of their
``Expiration`` by the shared cache. The STS endpoint is ``sts_endpoint`` when given, else
``$AWS_ENDPOINT_URL_STS`` (botocore's convention), else the regional endpoint.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from agent.config.files import FileWatcher, read_secret, read_text_file, secret_files
from agent.config.secret import Secret
from agent.credentials.cache import RefreshFailed, RefreshingCache, RefreshPolicy, Token
from agent.credentials.endpoint import TokenClient, display_url
from agent.events import EventHub

__all__ = ["INJECTED_HEADERS", "AwsSigV4", "default_sts_endpoint"]

_log = logging.getLogger("agent.credentials")

# At DEBUG, botocore logs the canonical request (with the x-amz-security-token value) and the raw
# STS answer (with the temporary secret key). Those values are not in the configuration, so the
# log scrubber cannot know them: keep these two loggers above DEBUG whatever the root level.
for _noisy in ("botocore.auth", "botocore.parsers"):
    logging.getLogger(_noisy).setLevel(logging.INFO)

#: Headers the signer sets (callers may not send them).
INJECTED_HEADERS = ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256")
_CODE = re.compile(r"[A-Za-z0-9_.]{1,64}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")


def default_sts_endpoint(region: str) -> str:
    return os.environ.get("AWS_ENDPOINT_URL_STS") or f"https://sts.{region}.amazonaws.com"


class _StsParser:
    """botocore's response parser and output shape for AssumeRoleWithWebIdentity (loaded once)."""

    def __init__(self) -> None:
        import botocore.parsers
        import botocore.session

        model = botocore.session.get_session().get_service_model("sts")
        shape = model.operation_model("AssumeRoleWithWebIdentity").output_shape
        assert shape is not None
        self.shape = shape
        self.parser = botocore.parsers.create_parser(model.metadata["protocol"])

    def parse(self, response: httpx.Response) -> dict[str, Any]:
        raw = {
            "body": response.content,
            "headers": dict(response.headers),
            "status_code": response.status_code,
        }
        parsed: dict[str, Any] = self.parser.parse(raw, self.shape)
        return parsed


class AwsSigV4:
    """Signs every request with SigV4 for one region and service."""

    secret_header: str | None = "authorization"  # noqa: S105 - a header name

    def __init__(
        self,
        *,
        region: str,
        service: str,
        integration: str,
        access_key_id: Secret | None = None,
        secret_access_key: Secret | None = None,
        session_token: Secret | None = None,
        role_arn: str | None = None,
        web_identity_token_file: str | None = None,
        sts_endpoint: str | None = None,
        session_name: str | None = None,
        hub: EventHub | None = None,
        policy: RefreshPolicy | None = None,
        client: TokenClient | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.integration = integration
        self._region = region
        self._service = service
        self._signer: type[SigV4Auth] = S3SigV4Auth if service == "s3" else SigV4Auth
        self._static: Credentials | None = None
        self._watcher: FileWatcher | None = None
        self._cache: RefreshingCache[Credentials] | None = None
        self.client = client or TokenClient()
        if role_arn is not None and web_identity_token_file is not None:
            self.can_refresh = True
            self._role_arn = role_arn
            self._token_file = Path(web_identity_token_file)
            self._sts = sts_endpoint or default_sts_endpoint(region)
            self._sts_display = display_url(self._sts)
            name = session_name or os.environ.get("AWS_ROLE_SESSION_NAME", "")
            fallback = re.sub(r"[^\w+=,.@-]", "-", f"kilo-agent-{integration}")[:64]
            self._session_name = name if _SESSION_NAME.fullmatch(name) else fallback
            self._parser: _StsParser | None = None
            self._cache = RefreshingCache(
                self._assume_role, integration=integration, hub=hub, policy=policy
            )
        else:
            if access_key_id is None or secret_access_key is None:
                raise ValueError(
                    "aws_sigv4 needs access keys or role_arn + web_identity_token_file"
                )
            self.can_refresh = False
            keys = (access_key_id, secret_access_key, session_token)
            token = None if session_token is None else session_token.get()
            self._static = self._keys(access_key_id.get(), secret_access_key.get(), token)
            files = tuple(p for s in keys if s is not None for p in secret_files(s))
            if files:
                self._watcher = FileWatcher(files, self._reload_keys(keys), interval=poll_interval)

    @staticmethod
    def _keys(access: str, secret: str, token: str | None) -> Credentials:
        return Credentials(access, secret, token)

    def _reload_keys(self, keys: tuple[Secret | None, ...]) -> Callable[[], None]:
        def reload() -> None:
            try:
                values = [None if s is None else read_secret(s) for s in keys]
            except (OSError, ValueError) as exc:
                _log.warning(
                    "AWS key file of integration '%s' changed but could not be read (%s); "
                    "keeping the previous keys",
                    self.integration,
                    exc,
                    extra={"integration": self.integration},
                )
                return
            access, secret, token = values
            assert access is not None
            assert secret is not None
            self._static = self._keys(access, secret, token)

        return reload

    # -- protocol ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._watcher is not None:
            self._watcher.start(self.integration)
        if self._cache is not None:
            self.client.open()
            if self._parser is None:
                self._parser = _StsParser()
            await self._cache.start()

    async def apply(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        credentials = self._static if self._cache is None else await self._cache.get()
        assert credentials is not None
        for name in INJECTED_HEADERS:
            headers.pop(name, None)
        request = AWSRequest(method=method, url=str(httpx.URL(url)), headers=headers, data=body)
        self._signer(credentials, self._service, self._region).add_auth(request)
        for name in INJECTED_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                headers[name] = value

    def invalidate(self) -> None:
        if self._cache is not None:
            self._cache.invalidate()

    def state(self) -> str:
        return "static" if self._cache is None else self._cache.state()

    def expires_at(self) -> datetime | None:
        return None if self._cache is None else self._cache.expires_at()

    async def aclose(self) -> None:
        if self._watcher is not None:
            await self._watcher.aclose()
        if self._cache is not None:
            await self._cache.aclose()
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"AwsSigV4(integration={self.integration!r}, service={self._service!r}, '***')"

    # -- IRSA -------------------------------------------------------------------------------

    async def _assume_role(self) -> Token[Credentials]:
        try:
            web_identity = read_text_file(self._token_file)
        except (OSError, ValueError) as exc:
            raise RefreshFailed(f"web_identity_token_file: {exc}") from None
        form = {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": self._role_arn,
            "RoleSessionName": self._session_name,
            "WebIdentityToken": web_identity,
        }
        response = await self.client.post(self._sts, data=form)
        if self._parser is None:
            self._parser = _StsParser()
        try:
            parsed = self._parser.parse(response)
        except Exception:  # botocore's ResponseParserError and friends: a malformed answer
            parsed = {}
        error = parsed.get("Error") or {}
        creds = parsed.get("Credentials") or {}
        if response.status_code != 200 or error or not creds:
            code = error.get("Code") if isinstance(error, dict) else None
            shown = f" {code}" if isinstance(code, str) and _CODE.fullmatch(code) else ""
            raise RefreshFailed(
                f"STS endpoint {self._sts_display} answered {response.status_code}{shown} to "
                "AssumeRoleWithWebIdentity"
            )
        try:
            keys = Credentials(
                creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
            )
            lifetime = creds["Expiration"].timestamp() - time.time()
        except (KeyError, AttributeError, TypeError):
            raise RefreshFailed(
                f"STS endpoint {self._sts_display} answered incomplete credentials"
            ) from None
        return Token(keys, lifetime=lifetime)
