"""An httpx transport that sends requests with aiohttp's asyncio-native connection pool.

Why: on this path httpcore costs ~620 µs of CPU per call more than aiohttp (benchmarks/README.md:
its pool is scanned under an anyio lock on every request, and anyio/sniffio look up the current
task several times per request). Keeping ``httpx.AsyncClient`` on top keeps the API the engine
uses and the OpenTelemetry httpx instrumentation, which wraps any transport.

Errors are mapped to httpx's exception classes precisely (a reset is a ReadError, not a
timeout), so ``transport/errors.py`` stays the one place that maps them to the agent's errors.
HTTP/1.1 only: integrations that want HTTP/2 use httpx's own transport (``transport.http2``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import yarl

__all__ = ["AiohttpTransport", "read_body"]

_CHUNK = 64 * 1024
# The encodings aiohttp decompresses itself (its parser knows exactly these four; br and zstd
# need optional packages, without which it refuses the body rather than passing it on).
_DECODED = frozenset({"gzip", "deflate", "br", "zstd"})


async def read_body(response: httpx.Response) -> bytes:
    """Read a whole response body: straight from aiohttp when it came through this transport,
    else through httpx (``Response.aread``)."""
    stream = response.stream
    if isinstance(stream, _Body):
        body = await stream.read_all()
        response._content = body  # so response.content works as after aread()
        return body
    return await response.aread()


def _mapped(exc: BaseException, request: httpx.Request, *, connecting: bool) -> httpx.HTTPError:
    """The httpx exception that says what really happened."""
    message = type(exc).__name__  # aiohttp messages can hold the full URL (webhook secrets)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientSSLError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        if connecting:
            return httpx.ConnectTimeout(message, request=request)
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message, request=request)
    return httpx.ReadError(message, request=request)  # resets, disconnects, other OS errors


class _Body(httpx.AsyncByteStream):
    """The response body, read from aiohttp as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _mapped(exc, self._request, connecting=False) from exc

    async def read_all(self) -> bytes:
        """The whole body in one read (the engine's fast path for ``Call``)."""
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _mapped(exc, self._request, connecting=False) from exc

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one aiohttp ClientSession (made in the running loop)."""

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        self._limits = limits
        self._ssl: ssl.SSLContext | bool = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else (ssl.create_default_context() if verify else False)
        )
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry or 15.0,
            ssl=self._ssl,
            ttl_dns_cache=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # aiohttp decompresses (in C) and the headers drop Content-Encoding/-Length below,
            # so httpx's own (pure Python) decoders see an identity body.
            auto_decompress=True,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            cookie_jar=aiohttp.DummyCookieJar(),  # one app's cookies must never reach another
            timeout=aiohttp.ClientTimeout(total=None),
        )
        # aiohttp silently re-sends idempotent requests once when a kept-alive connection was
        # closed; the agent's retry policy must see (and count, and budget) every attempt.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        content = request.content  # the engine always sends bytes, never a stream
        connected = False
        try:
            response = await session.request(
                request.method,
                # The exact bytes httpx encoded: requoting would break SigV4 signatures.
                yarl.URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
            )
            connected = True
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _mapped(exc, request, connecting=not connected) from exc
        headers = response.raw_headers
        if response.headers.get("Content-Encoding", "identity").lower() in _DECODED:
            headers = tuple(
                (k, v)
                for k, v in headers
                if k.lower() not in (b"content-encoding", b"content-length")
            )
        return httpx.Response(
            status_code=response.status,
            headers=headers,
            stream=_Body(response, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
