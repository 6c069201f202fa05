"""Step 6 of the tour, kept apart: a token refresh (OAuth 2.0 client credentials).

It runs on its own agent, started here, so that the token's lifetime starts with the step: the
fake upstream is the token endpoint (``POST /token``) and the API (``GET /secure`` answers with
the number of the token it received). The agent fetches token #1 at start, refreshes it ahead
of expiry in the background, and the next call carries token #2.

When this build cannot obtain such tokens (the agent refuses the ``auth`` type with a
configuration error), the step prints itself as skipped and the tour goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from agent.app import AgentApp
from agent.config import parse_config
from agent.demo.client import DemoClient
from agent.demo.fake_upstream import CLIENT_ID, FakeUpstream
from agent.demo.render import Outcome, Printer, seconds
from agent.errors import ConfigError

__all__ = ["StepResult", "token_refresh_step"]


@dataclass
class StepResult:
    ran: bool = False
    problems: list[str] = field(default_factory=list)


def oauth_config(upstream: str, secret: str) -> dict[str, Any]:
    return {
        "listen": {"grpc": "127.0.0.1:0"},
        "server": {"grace_period": "2s"},
        "telemetry": {"audit_log": "off"},
        "integrations": {
            "oauth": {
                "base_url": upstream,
                "retry": {"max_attempts": 1},
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": f"{upstream}/token",
                    "client_id": CLIENT_ID,
                    "client_secret": secret,
                    "scope": "orders.read",
                },
            }
        },
    }


def _token_number(outcome: Outcome) -> int | None:
    try:
        number = json.loads(outcome.body).get("token")
    except (ValueError, AttributeError):
        return None
    return number if isinstance(number, int) else None


async def token_refresh_step(
    printer: Printer, upstream: FakeUpstream, *, started: float, secret: str, lifetime: float
) -> StepResult:
    """Show one refresh ahead of expiry; skipped when this build has no OAuth2 provider."""
    result = StepResult()
    printer.step(
        "6",
        f"Token refresh: OAuth2 client credentials from upstream /token, {seconds(lifetime)} "
        "tokens",
    )
    try:
        app = AgentApp(parse_config(oauth_config(upstream.url, secret)))
    except ConfigError:
        printer.note("skipped: needs the credentials issue (oauth2_client_credentials)")
        return result
    result.ran = True
    address = await app.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            client = DemoClient(pb_grpc.IntegrationAgentStub(channel), started)
            await _refresh(client, printer, upstream, lifetime, result)
    finally:
        await app.stop()
    return result


async def _refresh(
    client: DemoClient,
    printer: Printer,
    upstream: FakeUpstream,
    lifetime: float,
    result: StepResult,
) -> None:
    first = await client.call("oauth", "/secure")
    first.note = f"upstream saw token #{_token_number(first)}"
    printer.row(first)
    printer.note(f"token requests: {upstream.token_requests}, at agent start; the app holds none")
    await asyncio.to_thread(upstream.wait_for_hits, "/token", 2, lifetime + 2.0)
    printer.note(
        f"+{client.now():.2f}s: the agent refreshed it ahead of expiry "
        f"(token requests: {upstream.token_requests})"
    )
    second = await client.call("oauth", "/secure")
    second.note = f"upstream saw token #{_token_number(second)}"
    printer.row(second)
    row = await client.status("oauth")
    expires = row.credential_expires_at
    left = expires.seconds + expires.nanos / 1e9 - time.time()
    expiry = (
        f", expires in {seconds(max(left, 0.0))}" if row.HasField("credential_expires_at") else ""
    )
    printer.note(f"credential_state {row.credential_state}{expiry}; no call waited")
    expect = result.problems.append
    if not (first.ok and _token_number(first) == 1):
        expect("6: the first call should carry token #1")
    if not (second.ok and _token_number(second) == 2):
        expect("6: the call after the refresh should carry token #2")
    if upstream.token_requests != 2:
        expect(f"6: expected 2 token requests, saw {upstream.token_requests}")
