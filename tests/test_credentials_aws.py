"""AWS SigV4 (botocore's signer) against a loopback API that re-verifies every signature with
botocore, and IRSA against a loopback STS answering the real AssumeRoleWithWebIdentity XML."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import AwsSigV4Auth
from agent.credentials import RefreshPolicy, build_provider
from agent.credentials.base import CredentialProvider
from agent.errors import CredentialsUnavailable
from tests.support.cred_helpers import call, cluster_token
from tests.support.token_server import STS_AUDIENCE, TokenServer, run_token_server

ACCESS_KEY = "AKIDSTATICEXAMPLE1"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
ROLE = "arn:aws:iam::123456789012:role/kilo"


@pytest.fixture(scope="module")
def server_module() -> Iterator[TokenServer]:
    with run_token_server() as server:
        from tests.support.cred_helpers import key_pair

        server.cluster_public_key = key_pair("cluster").public_pem
        yield server


@pytest.fixture
def server(server_module: TokenServer) -> TokenServer:
    server_module.reset()
    server_module.aws_keys[ACCESS_KEY] = (SECRET_KEY, "", float("inf"))
    return server_module


async def started(made: list[CredentialProvider], auth: Any, **kw: Any) -> CredentialProvider:
    provider = build_provider(auth, path="integrations.aws.auth", **kw)
    made.append(provider)
    await provider.start()
    return provider


def static_auth(service: str = "execute-api") -> AwsSigV4Auth:
    return AwsSigV4Auth.model_validate(
        {
            "type": "aws_sigv4",
            "region": "eu-west-1",
            "service": service,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
        }
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("GET", "/aws/items?b=2&a=1&name=x%20y", b"", {}),
        ("GET", "/aws/items?q=a b&empty=", b"", {}),  # httpx encodes it; the signature must agree
        ("POST", "/aws/invoke", b'{"x": 1}', {"content-type": "application/json", "x-app": "a  b"}),
        ("DELETE", "/aws/items/with%2Fslash", b"", {}),
    ],
)
async def test_static_keys_sign_what_is_sent(
    server: TokenServer,
    http: httpx.AsyncClient,
    providers: list[CredentialProvider],
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    provider = await started(providers, static_auth())
    response = await call(provider, http, method, f"{server.url}{path}", body, headers)
    assert response.status_code == 200, response.text
    assert provider.state() == "static"
    assert provider.expires_at() is None


async def test_s3_adds_the_payload_hash_and_a_tampered_body_is_refused(
    server: TokenServer,
    http: httpx.AsyncClient,
    providers: list[CredentialProvider],
) -> None:
    provider = await started(providers, static_auth("s3"))
    url = f"{server.url}/aws/bucket/key.txt"
    assert (await call(provider, http, "PUT", url, b"hello")).status_code == 200
    headers: dict[str, str] = {}
    await provider.apply("PUT", url, headers, b"hello")
    assert set(headers) >= {"authorization", "x-amz-date", "x-amz-content-sha256"}
    tampered = await http.put(url, headers=headers, content=b"HELLO")
    assert tampered.status_code == 403  # the verifier is real: a changed body fails
    assert (await http.get(url, headers=headers)).status_code == 403


async def test_irsa_assumes_the_role_and_refreshes_before_expiry(
    server: TokenServer,
    http: httpx.AsyncClient,
    providers: list[CredentialProvider],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"{server.url}/sts")
    server.sts_lifetime = 1.0  # + up to 1 s: Expiration is in whole seconds
    token_file = tmp_path / "token"
    token_file.write_text(cluster_token(STS_AUDIENCE))
    auth = AwsSigV4Auth.model_validate(
        {
            "type": "aws_sigv4",
            "region": "us-east-1",
            "service": "execute-api",
            "role_arn": ROLE,
            "web_identity_token_file": str(token_file),
        }
    )
    provider = await started(providers, auth)
    responses = await asyncio.gather(
        *(call(provider, http, "GET", f"{server.url}/aws/x?i={i}") for i in range(50))
    )
    assert {r.status_code for r in responses} == {200}
    assert len(server.requests_for("sts")) == 1  # the stampede shared one AssumeRole
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        response = await call(provider, http, "GET", f"{server.url}/aws/x")
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.02)
    sts = server.requests_for("sts")
    assert 3 <= len(sts) <= 6  # every 0.7-1.6 s (70-80 % of 1-2 s), before the keys expire
    assert sts[0].form["RoleArn"] == ROLE
    assert sts[0].form["RoleSessionName"]
    assert provider.state() in ("valid", "refreshing")
    assert provider.expires_at() is not None


async def test_irsa_refused_identity_token_is_reported(
    server: TokenServer,
    providers: list[CredentialProvider],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"{server.url}/sts")
    token_file = tmp_path / "token"
    wrong_audience = cluster_token("some-other-audience")
    token_file.write_text(wrong_audience)
    auth = AwsSigV4Auth.model_validate(
        {
            "type": "aws_sigv4",
            "region": "us-east-1",
            "service": "s3",
            "role_arn": ROLE,
            "web_identity_token_file": str(token_file),
        }
    )
    provider = await started(providers, auth, policy=RefreshPolicy(backoff_base=0.1))
    with pytest.raises(CredentialsUnavailable) as info:
        await provider.apply("GET", "http://x/", {}, b"")
    assert "400 InvalidIdentityToken" in str(info.value)
    assert wrong_audience not in str(info.value) + provider.state()
