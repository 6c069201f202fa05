"""JWT-signed grants against the loopback token server: Google service accounts (RFC 7523),
GitHub App installation tokens, and Entra ID (client secret and workload identity)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from agent.config import AzureAdAuth, GithubAppAuth, GoogleServiceAccountAuth
from agent.credentials import RefreshPolicy, build_provider
from agent.credentials.base import CredentialProvider
from agent.errors import ConfigError, CredentialsUnavailable
from tests.support.cred_helpers import call, cluster_token, key_pair
from tests.support.token_server import AZURE_AUDIENCE, TokenServer, run_token_server

SA_EMAIL = "robot@project.iam.gserviceaccount.com"
AZURE_SECRET = "az-Sec_7Hq2LpXw9RtZk"
QUICK = RefreshPolicy(backoff_base=0.1, backoff_cap=0.2)


@pytest.fixture(scope="module")
def server_module() -> Iterator[TokenServer]:
    with run_token_server() as server:
        server.jwt_issuers[SA_EMAIL] = key_pair("google").public_pem
        server.github_apps["12345"] = key_pair("github").public_pem
        server.installations.add("777")
        server.cluster_public_key = key_pair("cluster").public_pem
        server.clients["azure-app"] = AZURE_SECRET
        yield server


@pytest.fixture
def server(server_module: TokenServer) -> TokenServer:
    server_module.reset()
    return server_module


async def started(made: list[CredentialProvider], auth: Any, **kw: Any) -> CredentialProvider:
    provider = build_provider(auth, path="integrations.svc.auth", **kw)
    made.append(provider)
    await provider.start()
    return provider


def sa_file(
    tmp_path: Path, server: TokenServer, *, key: str = "google", token_uri: str | None = None
) -> Path:
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "kid-1",
                "private_key": key_pair(key).private_pem,
                "client_email": SA_EMAIL,
                "client_id": "1",
                "token_uri": token_uri or f"{server.url}/token",
            }
        )
    )
    return path


async def test_google_service_account_jwt_bearer(
    server: TokenServer,
    http: httpx.AsyncClient,
    providers: list[CredentialProvider],
    tmp_path: Path,
) -> None:
    auth = GoogleServiceAccountAuth.model_validate(
        {
            "type": "google_service_account",
            "credentials_file": str(sa_file(tmp_path, server)),
            "scopes": ["https://www.googleapis.com/auth/devstorage.read_only"],
        }
    )
    provider = await started(providers, auth)
    responses = await asyncio.gather(
        *(call(provider, http, "GET", f"{server.url}/api/b") for _ in range(20))
    )
    assert {r.status_code for r in responses} == {200}
    (request,) = server.requests_for("token")
    assert request.grant == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    header = jwt.get_unverified_header(request.form["assertion"])
    claims = jwt.decode(request.form["assertion"], options={"verify_signature": False})
    assert header["alg"] == "RS256"
    assert header["kid"] == "kid-1"
    assert claims["iss"] == SA_EMAIL
    assert claims["aud"] == f"{server.url}/token"
    assert claims["scope"] == "https://www.googleapis.com/auth/devstorage.read_only"
    assert claims["exp"] - claims["iat"] == 3600


async def test_google_assertion_signed_with_another_key_is_refused(
    server: TokenServer,
    providers: list[CredentialProvider],
    tmp_path: Path,
) -> None:
    auth = GoogleServiceAccountAuth.model_validate(
        {
            "type": "google_service_account",
            "credentials_file": str(sa_file(tmp_path, server, key="intruder")),
        }
    )
    provider = await started(providers, auth, policy=QUICK)
    with pytest.raises(CredentialsUnavailable, match="400 invalid_grant"):
        await provider.apply("GET", "http://x", {}, b"")


def test_google_credentials_file_problems_are_config_errors(
    server: TokenServer, tmp_path: Path
) -> None:
    missing = GoogleServiceAccountAuth.model_validate(
        {"type": "google_service_account", "credentials_file": str(tmp_path / "nope.json")}
    )
    with pytest.raises(ConfigError, match="does not exist"):
        build_provider(missing, path="integrations.g.auth")
    plain_http = GoogleServiceAccountAuth.model_validate(
        {
            "type": "google_service_account",
            "credentials_file": str(sa_file(tmp_path, server, token_uri="http://idp.example/t")),
        }
    )
    with pytest.raises(ConfigError, match="must use https"):
        build_provider(plain_http, path="integrations.g.auth")


def github_auth(
    server: TokenServer, *, key: str = "github", installation: str = "777"
) -> GithubAppAuth:
    return GithubAppAuth.model_validate(
        {
            "type": "github_app",
            "app_id": "12345",
            "installation_id": installation,
            "private_key": key_pair(key).private_pem,
            "api_url": server.url,
        }
    )


async def test_github_app_installation_token(
    server: TokenServer, http: httpx.AsyncClient, providers: list[CredentialProvider]
) -> None:
    server.lifetime = 3600
    provider = await started(providers, github_auth(server))
    responses = await asyncio.gather(
        *(call(provider, http, "GET", f"{server.url}/api/repos") for _ in range(30))
    )
    assert {r.status_code for r in responses} == {200}
    assert len(server.requests_for("github")) == 1
    expires = provider.expires_at()
    assert expires is not None
    assert 3500 < expires.timestamp() - __import__("time").time() <= 3600


async def test_github_wrong_key_and_unknown_installation(
    server: TokenServer, providers: list[CredentialProvider]
) -> None:
    wrong = await started(providers, github_auth(server, key="intruder"), policy=QUICK)
    with pytest.raises(CredentialsUnavailable, match="answered 401"):
        await wrong.apply("GET", "http://x", {}, b"")
    missing = await started(providers, github_auth(server, installation="9"), policy=QUICK)
    with pytest.raises(CredentialsUnavailable, match="answered 404"):
        await missing.apply("GET", "http://x", {}, b"")


def test_github_bad_private_key_is_a_config_error(server: TokenServer) -> None:
    auth = GithubAppAuth.model_validate(
        {
            "type": "github_app",
            "app_id": "1",
            "installation_id": "2",
            "private_key": "-----BEGIN RSA PRIVATE KEY-----\nnot-a-key\n"
            "-----END RSA PRIVATE KEY-----",
            "api_url": server.url,
        }
    )
    with pytest.raises(ConfigError) as info:
        build_provider(auth, path="integrations.gh.auth")
    assert info.value.problems[0].path == "integrations.gh.auth.private_key"
    assert "not-a-key" not in str(info.value)


async def test_azure_client_secret(
    server: TokenServer, http: httpx.AsyncClient, providers: list[CredentialProvider]
) -> None:
    auth = AzureAdAuth.model_validate(
        {
            "type": "azure_ad",
            "tenant_id": "tenant-1",
            "client_id": "azure-app",
            "client_secret": AZURE_SECRET,
            "scope": "https://management.azure.com/.default",
            "authority": server.url,
        }
    )
    provider = await started(providers, auth)
    assert (await call(provider, http, "GET", f"{server.url}/api/subs")).status_code == 200
    (request,) = server.requests_for("azure")
    assert request.form["scope"] == "https://management.azure.com/.default"
    assert request.auth_method == "post"


async def test_azure_workload_identity_rereads_the_federated_token(
    server: TokenServer,
    http: httpx.AsyncClient,
    providers: list[CredentialProvider],
    tmp_path: Path,
) -> None:
    server.lifetime = 0.6
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(cluster_token(AZURE_AUDIENCE))
    auth = AzureAdAuth.model_validate(
        {
            "type": "azure_ad",
            "tenant_id": "tenant-1",
            "client_id": "wi-app",
            "federated_token_file": str(token_file),
            "scope": "https://storage.azure.com/.default",
            "authority": server.url,
        }
    )
    provider = await started(providers, auth)
    assert (await call(provider, http, "GET", f"{server.url}/api/blob")).status_code == 200
    rotated = cluster_token(AZURE_AUDIENCE)
    token_file.write_text(rotated)  # the kubelet rotated it
    deadline = asyncio.get_running_loop().time() + 5
    while len(server.requests_for("azure")) < 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    requests = server.requests_for("azure")
    assert requests[0].auth_method == "assertion"
    assert requests[1].form["client_assertion"] == rotated
    assert (await call(provider, http, "GET", f"{server.url}/api/blob")).status_code == 200
