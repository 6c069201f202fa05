"""The path of one call through the engine: validate, prepare, send, answer.

Policies (limits, breaker, retries, cache, fallback) slot in around ``_exchange``; this module
knows nothing of gRPC. Timeouts: the call's own ``timeout`` if given, else the gRPC deadline,
else the integration's ``timeout``; never past the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Final

import httpx

from agent.engine.integration import Integration, origin_of
from agent.engine.registry import Registry
from agent.engine.types import CallMetrics, OutboundRequest, OutboundResponse, ResponseStream
from agent.engine.validate import (
    check_headers,
    check_method,
    check_path,
    path_allowed,
    strip_hop_by_hop,
)
from agent.errors import BodyTooLarge, UpstreamTimeout
from agent.events import EventHub, UpstreamAttempt
from agent.transport import map_transport_error
from agent.transport.errors import error_type

__all__ = ["Engine"]

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS: Final = 5


class _Prepared:
    """A validated request ready to send (one per call; slots keep it cheap)."""

    __slots__ = ("body", "headers", "method", "timeout", "url")

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes, timeout: float):
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout


class Engine:
    """Serves calls against one Registry (swapped as a whole on reload)."""

    def __init__(self, registry: Registry, hub: EventHub) -> None:
        self.registry = registry
        self._hub = hub

    # -- the two entry points -------------------------------------------------------------

    async def call(self, request: OutboundRequest) -> OutboundResponse:
        """One call whose whole answer is read before returning."""
        integration = self.registry.get(request.integration)
        prepared = self._prepare(integration, request)
        meta = CallMetrics(integration=integration.name)
        started = time.monotonic()
        try:
            async with asyncio.timeout(prepared.timeout):
                response = await self._exchange(integration, prepared, meta)
                try:
                    body = await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError:
            raise self._timeout_error(integration, prepared.timeout) from None
        except httpx.HTTPError as exc:
            raise map_transport_error(
                exc, integration=integration.name, display_url=integration.display_url
            ) from None
        finally:
            meta.upstream_duration = time.monotonic() - started
        headers = strip_hop_by_hop(response.headers.multi_items(), decoded=True)
        return OutboundResponse(response.status_code, tuple(headers), body, meta)

    async def stream(self, request: OutboundRequest) -> ResponseStream:
        """One call whose body is handed on chunk by chunk as the upstream sends it."""
        integration = self.registry.get(request.integration)
        prepared = self._prepare(integration, request)
        meta = CallMetrics(integration=integration.name)
        started = time.monotonic()
        try:
            async with asyncio.timeout(prepared.timeout):
                response = await self._exchange(integration, prepared, meta)
        except TimeoutError:
            raise self._timeout_error(integration, prepared.timeout) from None
        except httpx.HTTPError as exc:
            raise map_transport_error(
                exc, integration=integration.name, display_url=integration.display_url
            ) from None
        headers = strip_hop_by_hop(response.headers.multi_items(), decoded=True)
        body = self._relay(integration, response, meta, started)
        return ResponseStream(response.status_code, tuple(headers), body, meta)

    # -- steps ----------------------------------------------------------------------------

    def _prepare(self, integration: Integration, request: OutboundRequest) -> _Prepared:
        method = check_method(request.method)
        path, query = check_path(request.path)
        path_allowed(path, integration.allow_paths)
        if len(request.body) > integration.max_body:
            raise BodyTooLarge(
                f"request body is {len(request.body)} bytes, over integration "
                f"'{integration.name}' max_body of {integration.max_body} bytes; send less or "
                "raise `max_body`",
                integration=integration.name,
            )
        headers = dict(integration.static_headers)
        from_caller: set[str] = set()
        for name, value in check_headers(request.headers, integration.forbidden_headers):
            key = name.lower()
            if key in from_caller:  # a repeated field is one comma-joined list (RFC 9110 5.3)
                headers[key] = f"{headers[key]}, {value}"
            else:  # the caller's value replaces a static one of the same name
                headers[key] = value
                from_caller.add(key)
        if request.idempotency_key:
            headers["idempotency-key"] = request.idempotency_key
        return _Prepared(
            method,
            integration.url_for(path, query),
            headers,
            request.body,
            self._timeout_for(integration, request),
        )

    @staticmethod
    def _timeout_for(integration: Integration, request: OutboundRequest) -> float:
        remaining = None if request.deadline is None else request.deadline - time.monotonic()
        if request.timeout:
            return request.timeout if remaining is None else min(request.timeout, remaining)
        if remaining is not None:
            return remaining
        return integration.timeout

    async def _exchange(
        self, integration: Integration, prepared: _Prepared, meta: CallMetrics
    ) -> httpx.Response:
        """Send the request (with credentials) and follow same-origin redirects.

        A 401 from an integration whose credential can be refreshed invalidates it and sends
        the request once more with a fresh one (httpx's auth-flow shape).
        """
        method, url, body = prepared.method, prepared.url, prepared.body
        headers = prepared.headers
        credentials = integration.credentials
        reauthenticated = False
        for _ in range(_MAX_REDIRECTS + 2):
            await credentials.apply(method, url, headers, body)
            request = integration.client.build_request(method, url, headers=headers, content=body)
            meta.attempts += 1
            response = await self._send(integration, request, meta.attempts)
            if response.status_code == 401 and credentials.can_refresh and not reauthenticated:
                reauthenticated = True
                await response.aclose()
                credentials.invalidate()
                continue
            next_request = response.next_request
            if (
                response.status_code not in _REDIRECTS
                or next_request is None
                or origin_of(next_request.url) != integration.origin
            ):
                return response  # cross-origin redirects go back to the caller as they are
            await response.aclose()
            method, url = next_request.method, str(next_request.url)
            if method == "GET" and prepared.method != "GET":
                body = b""
                headers = {k: v for k, v in headers.items() if k != "content-type"}
        return response

    async def _send(
        self, integration: Integration, request: httpx.Request, attempt: int
    ) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await integration.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            self._attempted(integration, request.method, 0, started, attempt, error_type(exc))
            raise
        self._attempted(integration, request.method, response.status_code, started, attempt, "")
        return response

    def _attempted(
        self,
        integration: Integration,
        method: str,
        status: int,
        started: float,
        attempt: int,
        error: str,
    ) -> None:
        if self._hub.has_subscribers(UpstreamAttempt):
            self._hub.publish(
                UpstreamAttempt(
                    integration.name, method, status, time.monotonic() - started, attempt, error
                )
            )

    async def _relay(
        self, integration: Integration, response: httpx.Response, meta: CallMetrics, started: float
    ) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                if chunk:
                    yield chunk
        except httpx.HTTPError as exc:
            raise map_transport_error(
                exc, integration=integration.name, display_url=integration.display_url
            ) from None
        finally:
            meta.upstream_duration = time.monotonic() - started
            await response.aclose()

    @staticmethod
    def _timeout_error(integration: Integration, timeout: float) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"integration '{integration.name}' did not answer within {timeout:.3f}s (the call's "
            "timeout, its gRPC deadline or the integration's `timeout`, whichever is shortest); "
            "raise it, or check the upstream",
            integration=integration.name,
        )
