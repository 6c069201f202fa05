"""A real HTTP upstream on loopback (aiohttp in its own thread), for the call-path tests.

Routes: /echo/... (reflects the request as JSON), /status/{code}, /slow?delay=S, /sse?events=N
&hold=ID (sends one event, then waits until /release/ID), /redirect?to=URL&code=C, /big?size=N,
/gzip, /openai/v1/chat/completions (OpenAI-shaped JSON). Every request is recorded so tests can
assert what reached the upstream, and what did not.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.threaded_app import serve_in_thread


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class Upstream:
    url: str
    requests: list[Seen] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None
    holds: dict[str, asyncio.Event] = field(default_factory=dict)
    finished_streams: set[str] = field(default_factory=set)

    def clear(self) -> None:
        self.requests.clear()

    def release(self, hold: str) -> None:
        """Let a held SSE stream finish (thread-safe)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._event(hold).set)

    def _event(self, hold: str) -> asyncio.Event:
        return self.holds.setdefault(hold, asyncio.Event())


OPENAI_COMPLETION = {
    "id": "chatcmpl-123",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
}


def _app(state: Upstream) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        body = await request.read()
        state.requests.append(Seen(request.method, request.path_qs, dict(request.headers), body))
        return await handler(request)

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "raw_path": request.raw_path,
                "query": request.query_string,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body_b64": base64.b64encode(body).decode(),
            },
            headers={"X-Upstream": "echo", "Keep-Alive": "timeout=5", "Trailer": "x-t"},
        )

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.json_response({"status": code}, status=code)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "1")))
        return web.json_response({"slow": True})

    async def sse(request: web.Request) -> web.StreamResponse:
        events = int(request.query.get("events", "3"))
        hold = request.query.get("hold", "")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(events):
            chunk = {"id": "chatcmpl-1", "choices": [{"delta": {"content": f"tok{i}"}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if i == 0 and hold:
                await asyncio.wait_for(state._event(hold).wait(), timeout=20)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        if hold:
            state.finished_streams.add(hold)
        return response

    async def redirect(request: web.Request) -> web.Response:
        code = int(request.query.get("code", "302"))
        return web.Response(status=code, headers={"Location": request.query["to"]})

    async def big(request: web.Request) -> web.Response:
        size = int(request.query.get("size", "1024"))
        return web.Response(body=b"x" * size, content_type="application/octet-stream")

    async def gz(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"compressed": true}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    counters: dict[str, int] = {}

    async def flaky(request: web.Request) -> web.Response:
        """The first ``fail`` requests of ``id`` get ``status`` (503), then 200."""
        key = request.query["id"]
        counters[key] = counters.get(key, 0) + 1
        if counters[key] <= int(request.query.get("fail", "1")):
            headers = {}
            if "retry_after" in request.query:
                headers["Retry-After"] = request.query["retry_after"]
            status = int(request.query.get("status", "503"))
            return web.json_response({"attempt": counters[key]}, status=status, headers=headers)
        return web.json_response({"attempt": counters[key]})

    async def reset(request: web.Request) -> web.Response:
        """Drops the connection without an answer (a reset, as a crashed upstream does)."""
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(
            OPENAI_COMPLETION, headers={"x-ratelimit-remaining-requests": "499"}
        )

    app = web.Application(middlewares=[record], client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/echo{tail:.*}", echo)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/sse", sse)
    app.router.add_post("/sse", sse)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/big", big)
    app.router.add_get("/gzip", gz)
    app.router.add_post("/openai/v1/chat/completions", chat)
    app.router.add_route("*", "/flaky", flaky)
    app.router.add_route("*", "/reset", reset)
    return app


@contextmanager
def run_upstream() -> Iterator[Upstream]:
    """Serve the upstream on 127.0.0.1 (a free port) in a daemon thread for the block's life."""
    state = Upstream(url="")
    with serve_in_thread(lambda: _app(state), what="the test upstream") as (url, loop):
        state.url, state.loop = url, loop
        yield state
