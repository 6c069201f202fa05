"""No secret in logs, events, errors, reprs or state(): run every provider through success and
failure, capture everything they printed and raised, and scan it for every secret value."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import (
    AwsSigV4Auth,
    BearerAuth,
    GithubAppAuth,
    OAuth2ClientCredentialsAuth,
    OAuth2RefreshTokenAuth,
)
from agent.credentials import RefreshPolicy, build_provider
from agent.events import CredentialRefreshed, CredentialStateChanged, EventHub
from tests.support.cred_helpers import call, cluster_token, key_pair
from tests.support.token_server import STS_AUDIENCE, TokenServer, run_token_server

CLIENT_SECRET = "cs-LeakCheck-9f8e7d6c5b"
WRONG_SECRET = "cs-Wrong-1a2b3c4d5e6f"
STATIC_TOKEN = "sk-static-Zz9Yy8Xx7Ww6"
AWS_SECRET = "aws-Secret/Key+Leak0123456789abcdef"


@pytest.fixture(scope="module")
def server() -> Iterator[TokenServer]:
    with run_token_server() as server:
        server.clients["app"] = CLIENT_SECRET
        server.github_apps["42"] = key_pair("github").public_pem
        server.installations.add("1")
        server.cluster_public_key = key_pair("cluster").public_pem
        server.aws_keys["AKIDLEAKCHECK"] = (AWS_SECRET, "", float("inf"))
        yield server


async def test_no_secret_reaches_logs_errors_events_reprs_or_state(
    server: TokenServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"{server.url}/sts")
    hub = EventHub()
    events: list[object] = []
    hub.subscribe(CredentialRefreshed, events.append)
    hub.subscribe(CredentialStateChanged, events.append)
    refresh_token = server.issue_refresh_token("app")
    web_identity = cluster_token(STS_AUDIENCE)
    (tmp_path / "wi").write_text(web_identity)
    token_url = f"{server.url}/token"
    auths: dict[str, Any] = {
        "cc": OAuth2ClientCredentialsAuth.model_validate(
            {"token_url": token_url, "client_id": "app", "client_secret": CLIENT_SECRET}
        ),
        "cc_wrong": OAuth2ClientCredentialsAuth.model_validate(
            {"token_url": token_url, "client_id": "app", "client_secret": WRONG_SECRET}
        ),
        "rt": OAuth2RefreshTokenAuth.model_validate(
            {
                "token_url": token_url,
                "client_id": "app",
                "client_secret": CLIENT_SECRET,
                "refresh_token": refresh_token,
                "state_file": str(tmp_path / "rt.json"),
            }
        ),
        "static": BearerAuth.model_validate({"token": STATIC_TOKEN}),
        "gh": GithubAppAuth.model_validate(
            {
                "app_id": "42",
                "installation_id": "1",
                "api_url": server.url,
                "private_key": key_pair("github").private_pem,
            }
        ),
        "aws": AwsSigV4Auth.model_validate(
            {
                "region": "us-east-1",
                "service": "s3",
                "access_key_id": "AKIDLEAKCHECK",
                "secret_access_key": AWS_SECRET,
            }
        ),
        "irsa": AwsSigV4Auth.model_validate(
            {
                "region": "us-east-1",
                "service": "s3",
                "role_arn": "arn:aws:iam::1:role/r",
                "web_identity_token_file": str(tmp_path / "wi"),
            }
        ),
        "irsa_bad": AwsSigV4Auth.model_validate(
            {
                "region": "us-east-1",
                "service": "s3",
                "role_arn": "arn:aws:iam::1:role/r",
                "web_identity_token_file": str(tmp_path / "missing"),
            }
        ),
    }
    shown: list[str] = []
    policy = RefreshPolicy(backoff_base=0.05, backoff_cap=0.1)
    async with httpx.AsyncClient() as http:
        for name, auth in auths.items():
            provider = build_provider(
                auth, path=f"integrations.{name}.auth", hub=hub, policy=policy
            )
            await provider.start()
            target = (
                f"{server.url}/aws/b/k"
                if name.startswith(("aws", "irsa"))
                else (f"{server.url}/api/x")
            )
            for _ in range(2):
                try:
                    response = await call(provider, http, "GET", target)
                    shown.append(response.text)
                except Exception as exc:
                    shown += [str(exc), repr(exc)]
                if provider.can_refresh:
                    server.revoke_all()
            shown += [repr(provider), provider.state(), str(provider.expires_at())]
            await provider.aclose()
    assert any("invalid_client" in s for s in shown)  # the failure paths did run
    assert any("web_identity_token_file" in s for s in shown)
    secrets = {CLIENT_SECRET, WRONG_SECRET, STATIC_TOKEN, AWS_SECRET, refresh_token, web_identity}
    secrets |= set(server.tokens) | set(server.refresh_tokens) | server.used_refresh_tokens
    secrets |= {v[0] for v in server.aws_keys.values()} | {v[1] for v in server.aws_keys.values()}
    pem_lines = key_pair("github").private_pem.splitlines()[1:-1]
    secrets |= {line for line in pem_lines if len(line) > 20}
    secrets.discard("")
    haystack = "\n".join([caplog.text, *shown, *(repr(e) for e in events)])
    leaked = sorted(s[:6] + "..." for s in secrets if s in haystack)
    assert not leaked, f"secrets leaked: {leaked}"
    assert any(isinstance(e, CredentialStateChanged) and e.new == "failed" for e in events)
