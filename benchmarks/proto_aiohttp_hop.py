"""A minimal prototype of the agent's hop, for comparison: grpc.aio + aiohttp.ClientSession.

It implements ``kilo.agent.v1.IntegrationAgent/Call`` for one upstream with nothing else (no
validation, policies, credentials provider or events): decode, forward with a pooled
``aiohttp.ClientSession`` on uvloop, encode. ../shared/reference/performance.md measured this
shape at ~460 us CPU per call; the benchmark runs it next to the agent in the same run.

``--client httpx`` swaps in ``httpx.AsyncClient`` (the agent's pool settings: 64 connections, 32
kept alive) to split the agent's cost into "the HTTP client" and "the agent's own code";
``--client httpx-aiohttp`` keeps httpx's API on the ``httpx_aiohttp.AiohttpTransport``
(``pip install httpx-aiohttp``), a candidate for keeping httpx while losing httpcore.

    python benchmarks/proto_aiohttp_hop.py --listen 127.0.0.1:50061 \
        --base-url http://127.0.0.1:18080/v1 --token sk-bench-not-a-secret
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import aiohttp
import grpc
import uvloop

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class Hop(pb_grpc.IntegrationAgentServicer):
    def __init__(self, name: str, base_url: str, token: str, limit: int, client: str) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.auth = f"Bearer {token}"
        self.limit = limit
        self.client = client
        self.session: aiohttp.ClientSession | None = None
        self.httpx: Any = None

    async def start(self) -> None:
        if self.client == "aiohttp":
            connector = aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=120)
            self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
            return
        import httpx

        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        transport = None
        if self.client == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport

            transport = AiohttpTransport(limits=limits, trust_env=False)
        self.httpx = httpx.AsyncClient(
            http2=transport is None,
            limits=limits,
            timeout=10.0,
            trust_env=False,
            follow_redirects=False,
            transport=transport,
        )

    async def Call(self, request: pb.CallRequest, context: Any) -> pb.CallResponse:
        if request.integration != self.name:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no integration {request.integration}")
        headers = {h.name: h.value for h in request.headers}
        headers["Authorization"] = self.auth
        if self.httpx is not None:
            r = await self.httpx.request(
                request.method, self.base_url + request.path, headers=headers, content=request.body
            )
            return pb.CallResponse(
                status=r.status_code,
                headers=[
                    pb.Header(name=k, value=v)
                    for k, v in r.headers.multi_items()
                    if k not in _HOP_BY_HOP
                ],
                body=r.content,
                meta=pb.CallMeta(integration=self.name, attempts=1),
            )
        assert self.session is not None
        async with self.session.request(
            request.method, self.base_url + request.path, headers=headers, data=request.body
        ) as response:
            body = await response.read()
            return pb.CallResponse(
                status=response.status,
                headers=[
                    pb.Header(name=k, value=v)
                    for k, v in response.headers.items()
                    if k.lower() not in _HOP_BY_HOP
                ],
                body=body,
                meta=pb.CallMeta(integration=self.name, attempts=1),
            )


async def serve(args: argparse.Namespace) -> None:
    hop = Hop(args.integration, args.base_url, args.token, args.limit, args.client)
    await hop.start()
    server = grpc.aio.server()
    pb_grpc.add_IntegrationAgentServicer_to_server(hop, server)
    server.add_insecure_port(args.listen)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)
    if hop.session is not None:
        await hop.session.close()
    if hop.httpx is not None:
        await hop.httpx.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port, loopback only")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", default="sk-bench-not-a-secret")
    parser.add_argument("--integration", default="bench")
    parser.add_argument("--limit", type=int, default=100, help="aiohttp connector limit")
    parser.add_argument(
        "--client", choices=("aiohttp", "httpx", "httpx-aiohttp"), default="aiohttp"
    )
    args = parser.parse_args()
    if not args.listen.startswith(("127.", "[::1]", "localhost")):
        parser.error("--listen must be a loopback address")
    uvloop.run(serve(args))


if __name__ == "__main__":
    main()
