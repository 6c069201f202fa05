"""The retry loop for one integration: attempts, credentials, redirects, classification.

Each attempt: breaker check (from the second on; the chain checked the first), credentials
applied, the request sent with the attempt's time budget, then the outcome classified: the
limiter observes the upstream's rate-limit headers, the breaker records success or failure, and
the retry policy decides whether (and after how long) to try again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

import httpx

from agent.engine.integration import Integration, origin_of
from agent.engine.types import CallMetrics
from agent.errors import AgentError, UpstreamTimeout
from agent.events import EventHub, UpstreamAttempt
from agent.transport import map_transport_error, read_body
from agent.transport.errors import error_type

__all__ = ["Answer", "AttemptRunner", "Prepared", "timeout_error"]

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS: Final = 5
_EMPTY: Final = httpx.Headers()


@dataclass(slots=True)
class Prepared:
    """A validated request for one integration (one per call and integration tried)."""

    method: str
    url: str
    path_qs: str  # relative path and query, the cache key's part
    headers: dict[str, str]  # lower-case names
    body: bytes
    idempotent_key: bool


@dataclass(slots=True)
class Answer:
    """An upstream answer: read whole (``body``), or still streaming (``response``)."""

    status: int
    headers: httpx.Headers
    body: bytes = b""
    response: httpx.Response | None = None  # open, body unread (CallStream success)
    retryable_failure: bool = False  # retries spent on a status worth a fallback


def timeout_error(integration: Integration, timeout: float) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"integration '{integration.name}' did not answer within {timeout:.3f}s (the call's "
        "timeout, its gRPC deadline or the integration's `timeout`, whichever is shortest); "
        "raise it, or check the upstream",
        integration=integration.name,
    )


class AttemptRunner:
    """Runs the attempts of one call against one integration."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub

    async def run(
        self,
        integration: Integration,
        prepared: Prepared,
        meta: CallMetrics,
        deadline: float | None,
        *,
        streaming: bool,
    ) -> Answer:
        """Attempt until success, a non-retryable outcome, or retries spent; raises AgentError."""
        retry, breaker = integration.retry, integration.breaker
        retry.record_call()
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1 and breaker is not None:
                breaker.allow()  # an open breaker stops the retries (raises CircuitOpen)
            budget = integration.timeout
            if deadline is not None:
                budget = min(budget, deadline - time.monotonic())
                if budget <= 0:
                    raise timeout_error(integration, 0.0)
            started = time.monotonic()
            error: AgentError | None = None
            answer: Answer | None = None
            try:
                async with asyncio.timeout(budget):
                    response = await self._exchange(integration, prepared, meta)
                    answer = Answer(response.status_code, response.headers)
                    if streaming and response.status_code < 400:
                        answer.response = response
                    else:
                        try:
                            answer.body = await read_body(response)
                        finally:
                            await response.aclose()
            except TimeoutError:
                error = timeout_error(integration, budget)
            except httpx.HTTPError as exc:
                error = map_transport_error(
                    exc, integration=integration.name, display_url=integration.display_url
                )
            duration = time.monotonic() - started
            meta.upstream_duration += duration
            if error is not None:
                if breaker is not None:
                    breaker.record(False, duration)
                decision = retry.decide(
                    attempt=attempt,
                    method=prepared.method,
                    error=error,
                    has_idempotency_key=prepared.idempotent_key,
                    deadline=deadline,
                )
                if decision.retry:
                    await asyncio.sleep(decision.delay)
                    continue
                raise error
            assert answer is not None
            status = answer.status
            integration.limiter.observe(
                status, answer.headers, body=answer.body if status == 429 else None
            )
            if breaker is not None:
                breaker.record(status not in integration.failure_status, duration)
            if status < 400:
                return answer
            decision = retry.decide(
                attempt=attempt,
                method=prepared.method,
                status=status,
                headers=answer.headers,
                has_idempotency_key=prepared.idempotent_key,
                deadline=deadline,
            )
            if decision.retry:
                await asyncio.sleep(decision.delay)
                continue
            answer.retryable_failure = status in retry.on_status
            return answer

    async def _exchange(
        self, integration: Integration, prepared: Prepared, meta: CallMetrics
    ) -> httpx.Response:
        """Send with credentials; follow same-origin redirects; re-authenticate once on 401.

        Requests go straight to the integration's transport: the client's per-call merging of
        default URL, headers and cookies is work the engine already did once (and a shared
        cookie jar would leak one app's cookies into another's calls).
        """
        method, url, body = prepared.method, prepared.url, prepared.body
        headers = prepared.headers
        credentials = integration.credentials
        reauthenticated = False
        for _ in range(_MAX_REDIRECTS + 2):
            await credentials.apply(method, url, headers, body)
            request = httpx.Request(
                method,
                url,
                headers=headers,
                content=body,
                extensions=integration.request_extensions,
            )
            meta.attempts += 1
            response = await self._send(integration, request, meta.attempts)
            status = response.status_code
            if status == 401 and credentials.can_refresh and not reauthenticated:
                reauthenticated = True
                await response.aclose()
                credentials.invalidate()
                continue
            location = response.headers.get("location") if status in _REDIRECTS else None
            if not location:
                return response
            try:
                target = request.url.join(location)
            except httpx.InvalidURL:
                return response
            if origin_of(target) != integration.origin:
                return response  # cross-origin redirects go back to the caller as they are
            await response.aclose()
            url = str(target)
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, body = "GET", b""  # as browsers and httpx do (RFC 9110 15.4)
                headers = {k: v for k, v in headers.items() if k != "content-type"}
        return response

    async def _send(
        self, integration: Integration, request: httpx.Request, attempt: int
    ) -> httpx.Response:
        started = time.monotonic()
        try:
            response = await integration.transport.handle_async_request(request)
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
