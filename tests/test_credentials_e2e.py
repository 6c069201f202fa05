"""Credentials through a real agent process: token fetched once, 401 costs one refresh, no secret
printed, and a token endpoint that is down gives CREDENTIALS_UNAVAILABLE."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from tests.support.grpc_errors import details_of
from tests.support.token_server import TokenServer, run_token_server

CLIENT_SECRET = "cs-e2e-Vb7Qm2Lx9Rt4"


@pytest.fixture(scope="module")
def token_server() -> Iterator[TokenServer]:
    with run_token_server() as server:
        server.clients["kilo"] = CLIENT_SECRET
        yield server


@pytest.fixture
def tokens(token_server: TokenServer) -> TokenServer:
    token_server.reset()
    return token_server


def oauth_config(token_url: str, api_url: str) -> dict:  # type: ignore[type-arg]
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": token_url,
        "client_id": "kilo",
        "client_secret": CLIENT_SECRET,
        "scope": "api.read",
    }
    return {
        "listen": {"grpc": "127.0.0.1:0"},
        "server": {"grace_period": "2s"},
        "telemetry": {"audit_log": "off"},
        "integrations": {
            "api": {"base_url": api_url, "auth": auth, "retry": {"max_attempts": 1}},
        },
    }


def call() -> pb.CallRequest:
    return pb.CallRequest(integration="api", method="GET", path="/items")


async def test_hundred_calls_one_token_then_revocation_costs_one_refresh(
    start_agent_process, tokens: TokenServer
) -> None:
    process, stub, _ = await start_agent_process(
        oauth_config(f"{tokens.url}/token", f"{tokens.url}/api")
    )
    answers = await asyncio.gather(*(stub.Call(call()) for _ in range(100)))
    assert {a.status for a in answers} == {200}
    assert len(tokens.requests_for("token")) == 1  # no stampede on the token endpoint

    listed = await stub.ListIntegrations(pb.ListIntegrationsRequest())
    (status,) = listed.integrations
    assert status.credential_state == "valid"
    assert status.HasField("credential_expires_at")

    tokens.revoke_all()  # the issuer revokes: the next call sees a 401
    answer = await stub.Call(call())
    assert answer.status == 200  # the agent refreshed and resent, the app saw no failure
    assert answer.meta.attempts == 2
    assert len(tokens.requests_for("token")) == 2
    assert [s for _p, s in tokens.api_calls[-2:]] == [401, 200]
    assert CLIENT_SECRET not in process.output()


async def test_token_endpoint_down_gives_credentials_unavailable(
    start_agent_process, tokens
) -> None:  # type: ignore[no-untyped-def]
    tokens.fail_next = 1000  # every token request answers 503
    _process, stub, _ = await start_agent_process(
        oauth_config(f"{tokens.url}/token", f"{tokens.url}/api")
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Call(call(), timeout=10)
    details = details_of(caught.value)
    assert details.code == grpc.StatusCode.UNAVAILABLE
    assert details.reason == "CREDENTIALS_UNAVAILABLE"
    assert "503" in details.message
    assert CLIENT_SECRET not in details.message
    tokens.fail_next = 0
    assert tokens.api_calls == []  # no call went out without a token
