"""OAuth2 client credentials and refresh-token grants against a real token server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import OAuth2ClientCredentialsAuth, OAuth2RefreshTokenAuth
from agent.credentials import RefreshPolicy, build_provider
from agent.credentials.base import CredentialProvider
from agent.credentials.endpoint import require_secure_url
from agent.errors import ConfigError, CredentialsUnavailable
from agent.events import CredentialRefreshed, EventHub
from tests.support.cred_helpers import call
from tests.support.token_server import TokenServer, run_token_server

CLIENT_SECRET = "cs-Pq7wXr2LmZt9VbN4sKe8"
QUICK = RefreshPolicy(backoff_base=0.1, backoff_cap=0.2)


@pytest.fixture(scope="module")
def server_module() -> Iterator[TokenServer]:
    with run_token_server() as server:
        server.clients["app"] = CLIENT_SECRET
        server.clients["public-app"] = ""
        yield server


@pytest.fixture
def server(server_module: TokenServer) -> TokenServer:
    server_module.reset()
    return server_module


async def started(made: list[CredentialProvider], auth: Any, **kwargs: Any) -> CredentialProvider:
    provider = build_provider(auth, path="integrations.svc.auth", **kwargs)
    made.append(provider)
    await provider.start()
    return provider


def cc_auth(server: TokenServer, **extra: Any) -> OAuth2ClientCredentialsAuth:
    return OAuth2ClientCredentialsAuth.model_validate(
        {
            "type": "oauth2_client_credentials",
            "token_url": f"{server.url}/token",
            "client_id": "app",
            "client_secret": CLIENT_SECRET,
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("method", "seen"), [("client_secret_basic", "basic"), ("client_secret_post", "post")]
)
async def test_client_credentials_authenticates_the_client_both_ways(
    server: TokenServer,
    http: httpx.AsyncClient,
    providers: list[CredentialProvider],
    method: str,
    seen: str,
) -> None:
    auth = cc_auth(server, client_auth=method, scope="read write", audience="https://api.test")
    provider = await started(providers, auth)
    response = await call(provider, http, "GET", f"{server.url}/api/things")
    assert response.status_code == 200
    (request,) = server.requests_for("token")
    assert request.auth_method == seen
    assert request.form["scope"] == "read write"
    assert request.form["audience"] == "https://api.test"
    assert ("client_secret" in request.form) is (seen == "post")
    assert provider.state() == "valid"
    expires = provider.expires_at()
    assert expires is not None
    assert 50 < expires.timestamp() - time.time() <= 60


async def test_a_stampede_at_start_up_makes_one_token_request(
    server: TokenServer, http: httpx.AsyncClient, providers: list[CredentialProvider]
) -> None:
    server.delay = 0.2  # the token endpoint is slow: every call arrives before the token
    provider = await started(providers, cc_auth(server))
    responses = await asyncio.gather(
        *(call(provider, http, "GET", f"{server.url}/api/{i}") for i in range(100))
    )
    assert {r.status_code for r in responses} == {200}
    assert len(server.requests_for("token")) == 1


async def test_calls_over_several_token_lifetimes_keep_succeeding(
    server: TokenServer, http: httpx.AsyncClient, providers: list[CredentialProvider]
) -> None:
    server.lifetime = 1.0  # default policy: refresh when 20-30 % of the lifetime is left
    hub = EventHub()
    refreshed: list[CredentialRefreshed] = []
    hub.subscribe(CredentialRefreshed, refreshed.append)
    provider = await started(providers, cc_auth(server), hub=hub)
    duration, statuses = 4.2, []
    end = time.monotonic() + duration
    while time.monotonic() < end:
        statuses.append((await call(provider, http, "GET", f"{server.url}/api/x")).status_code)
        await asyncio.sleep(0.02)
    assert set(statuses) == {200}
    assert all(status == 200 for _, status in server.api_calls)  # never even one 401
    # First token at t=0, then one every 0.7-0.8 s: 1 + 5..6 requests in 4.2 s.
    assert 6 <= len(server.requests_for("token")) <= 7
    assert all(e.ok and e.expires_at is not None for e in refreshed)
    assert {e.trigger for e in refreshed[1:]} == {"scheduled"}


async def test_a_revoked_token_costs_one_refresh_and_no_failed_call(
    server: TokenServer, http: httpx.AsyncClient, providers: list[CredentialProvider]
) -> None:
    provider = await started(providers, cc_auth(server))
    results: list[int] = []
    revoked = asyncio.Event()

    async def worker(n: int) -> None:
        for i in range(30):
            if n == 0 and i == 10:
                server.revoke_all()  # mid-stream: every live token dies at once
                revoked.set()
            results.append((await call(provider, http, "GET", f"{server.url}/api/{n}")).status_code)
            await asyncio.sleep(0.005)

    await asyncio.gather(*(worker(n) for n in range(5)))
    assert revoked.is_set()
    assert set(results) == {200}
    assert len(results) == 150
    assert any(status == 401 for _, status in server.api_calls)  # the revocation was felt ...
    assert len(server.requests_for("token")) == 2  # ... and cost exactly one refresh


async def test_an_unreachable_or_failing_endpoint_gives_credentials_unavailable(
    server: TokenServer, http: httpx.AsyncClient, providers: list[CredentialProvider]
) -> None:
    server.fail_next = 2
    provider = await started(providers, cc_auth(server), policy=QUICK)
    with pytest.raises(CredentialsUnavailable) as info:
        await call(provider, http, "GET", f"{server.url}/api/x")
    message = str(info.value)
    assert "503 temporarily_unavailable" in message
    assert f"{server.url}/token" in message
    assert provider.state().startswith("failed: token endpoint")
    deadline = time.monotonic() + 5
    while provider.state() != "valid":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert (await call(provider, http, "GET", f"{server.url}/api/x")).status_code == 200
    assert len(server.requests_for("token")) == 3


async def test_a_wrong_client_secret_is_reported_without_the_secret(
    server: TokenServer, http: httpx.AsyncClient, providers: list[CredentialProvider]
) -> None:
    auth = cc_auth(server, client_secret="wrong-Secret-Kq3RtXz8")
    provider = await started(providers, auth, policy=QUICK)
    with pytest.raises(CredentialsUnavailable) as info:
        await call(provider, http, "GET", f"{server.url}/api/x")
    assert "401 invalid_client" in str(info.value)
    assert "wrong-Secret-Kq3RtXz8" not in str(info.value) + provider.state() + repr(provider)


async def test_unreachable_endpoint(
    http: httpx.AsyncClient, providers: list[CredentialProvider]
) -> None:
    auth = OAuth2ClientCredentialsAuth.model_validate(
        {
            "type": "oauth2_client_credentials",
            "token_url": "http://127.0.0.1:9/token",
            "client_id": "app",
            "client_secret": CLIENT_SECRET,
        }
    )
    provider = await started(providers, auth, policy=QUICK)
    with pytest.raises(CredentialsUnavailable, match="unreachable \\(ConnectError\\)"):
        await provider.apply("GET", "http://x", {}, b"")


def test_token_endpoints_must_be_https_except_on_loopback() -> None:
    assert require_secure_url("https://idp.example/token", path="p")
    assert require_secure_url("http://127.0.0.1:8080/token", path="p")
    assert require_secure_url("http://localhost/token", path="p")
    with pytest.raises(ConfigError, match="must use https"):
        require_secure_url("http://idp.example/token", path="integrations.x.auth.token_url")
    # A model built without validation (as a later config source might) is still refused.
    auth = OAuth2ClientCredentialsAuth.model_construct(
        type="oauth2_client_credentials",
        token_url="http://idp.example/token",
        client_id="a",
        client_secret=None,
        scope="",
        audience="",
        client_auth="client_secret_basic",
    )
    with pytest.raises(ConfigError) as info:
        build_provider(auth, path="integrations.x.auth")
    assert info.value.problems[0].path == "integrations.x.auth.token_url"


# -- refresh token with rotation ---------------------------------------------------------------


def rt_auth(server: TokenServer, refresh_token: str, **extra: Any) -> OAuth2RefreshTokenAuth:
    return OAuth2RefreshTokenAuth.model_validate(
        {
            "type": "oauth2_refresh_token",
            "token_url": f"{server.url}/token",
            "client_id": "app",
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh_token,
            **extra,
        }
    )


async def test_refresh_token_rotation_keeps_the_newest_and_survives_a_restart(
    server: TokenServer,
    http: httpx.AsyncClient,
    providers: list[CredentialProvider],
    tmp_path: Path,
) -> None:
    server.lifetime = 0.6
    first = server.issue_refresh_token("app")
    state_file = tmp_path / "state" / "svc.json"
    auth = rt_auth(server, first, state_file=str(state_file))
    provider = await started(providers, auth)
    responses = await asyncio.gather(
        *(call(provider, http, "GET", f"{server.url}/api/{i}") for i in range(50))
    )
    assert {r.status_code for r in responses} == {200}
    end = time.monotonic() + 2.0  # several rotations: each old refresh token dies at first use
    while time.monotonic() < end:
        assert (await call(provider, http, "GET", f"{server.url}/api/x")).status_code == 200
        await asyncio.sleep(0.02)
    requests = server.requests_for("token")
    assert len(requests) >= 3
    used = [r.form["refresh_token"] for r in requests]
    assert used[0] == first
    assert len(set(used)) == len(used)
    saved = json.loads(state_file.read_text())
    assert saved["refresh_token"] in server.refresh_tokens  # the live (newest) one
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    assert [p.name for p in state_file.parent.iterdir()] == ["svc.json"]  # no temp files left
    await provider.aclose()

    # A restart with the same config: the configured token is dead, the saved one is not.
    again = await started(providers, rt_auth(server, first, state_file=str(state_file)))
    assert (await call(again, http, "GET", f"{server.url}/api/x")).status_code == 200
    assert server.requests_for("token")[-1].form["refresh_token"] == saved["refresh_token"]


async def test_without_a_state_file_a_restart_reuses_a_dead_refresh_token(
    server: TokenServer, providers: list[CredentialProvider]
) -> None:
    first = server.issue_refresh_token("app")
    provider = await started(providers, rt_auth(server, first), policy=QUICK)
    await provider.apply("GET", "http://x", {}, b"")
    await provider.aclose()
    again = await started(providers, rt_auth(server, first), policy=QUICK)
    with pytest.raises(CredentialsUnavailable) as info:
        await again.apply("GET", "http://x", {}, b"")
    assert "invalid_grant" in str(info.value)
    assert "authorize again" in str(info.value)
    assert first not in str(info.value)


async def test_public_client_refresh_sends_client_id_only(
    server: TokenServer, providers: list[CredentialProvider]
) -> None:
    rt = server.issue_refresh_token("public-app")
    auth = OAuth2RefreshTokenAuth.model_validate(
        {
            "type": "oauth2_refresh_token",
            "token_url": f"{server.url}/token",
            "client_id": "public-app",
            "refresh_token": rt,
        }
    )
    provider = await started(providers, auth)
    headers: dict[str, str] = {}
    await provider.apply("GET", "http://x", headers, b"")
    assert headers["authorization"].startswith("Bearer at-")
    (request,) = server.requests_for("token")
    assert request.auth_method == "none"
    assert request.form["client_id"] == "public-app"
