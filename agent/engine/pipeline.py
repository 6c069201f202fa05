"""The path of one call through the engine (DESIGN.md), knowing nothing of gRPC::

    validate -> cache lookup (GET/HEAD) -> for integration in [target, *fallback]:
        breaker.allow -> limiter.acquire -> retry loop:
            credentials.apply -> send -> limiter.observe, breaker.record, retry.decide
    -> cache store

Time: the call's ``timeout`` (else its gRPC deadline) bounds the whole call, retries and
fallbacks included; each attempt gets the integration's ``timeout`` or what remains, whichever
is shorter. Fallback happens when an integration's breaker is open, its limit can't be met in
``max_wait``, or its retries are spent on a retryable failure.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Final

import httpx

from agent.engine.attempts import Answer, AttemptRunner, Prepared
from agent.engine.integration import Integration
from agent.engine.llm import request_model
from agent.engine.registry import Registry
from agent.engine.types import CallMetrics, OutboundRequest, OutboundResponse, ResponseStream
from agent.engine.validate import (
    check_headers,
    check_method,
    check_path,
    path_allowed,
    strip_hop_by_hop,
)
from agent.errors import AgentError, BodyTooLarge, CircuitOpen, RateLimited
from agent.events import CacheLookup, EventHub, FallbackUsed, LlmUsage, RateLimitWaited
from agent.policies import (
    CACHEABLE_METHODS,
    Permit,
    SSEUsage,
    TokenUsage,
    cache_key,
    estimate_tokens,
    read_answer,
    request_allows_cache,
)
from agent.transport import map_transport_error

__all__ = ["Engine"]

_NO_PERMIT: Final = None


class Engine:
    """Serves calls against one Registry (swapped as a whole on reload)."""

    def __init__(self, registry: Registry, hub: EventHub) -> None:
        self.registry = registry
        self._hub = hub
        self._attempts = AttemptRunner(hub)

    # -- entry points ---------------------------------------------------------------------

    async def call(self, request: OutboundRequest) -> OutboundResponse:
        """One call whose whole answer is read before returning."""
        target = self.registry.get(request.integration)
        prepared = self._prepare(target, request)
        deadline = _overall_deadline(request)
        cache = target.cache
        if (
            cache is None
            or prepared.method not in CACHEABLE_METHODS
            or not request_allows_cache(prepared.headers)
        ):
            return await self._call_chain(target, request, prepared, deadline)
        key = cache_key(prepared.method, prepared.path_qs)
        entry = cache.get(key)
        if self._hub.has_subscribers(CacheLookup):
            self._hub.publish(CacheLookup(target.name, entry is not None))
        if entry is not None:
            meta = CallMetrics(integration=target.name, cache_hit=True)
            return OutboundResponse(entry.status, entry.headers, entry.body, meta)

        async def fetch() -> OutboundResponse:
            response = await self._call_chain(target, request, prepared, deadline)
            if response.meta.integration == target.name:
                lowered = {k.lower(): v for k, v in response.headers}
                cache.put(key, response.status, lowered, response.body)
            return response

        response, shared = await target.flights.do(key, fetch)
        if shared:  # a follower of an identical concurrent GET: same answer, no upstream call
            return replace(response, meta=replace(response.meta, cache_hit=True, attempts=0))
        return response

    async def stream(self, request: OutboundRequest) -> ResponseStream:
        """One call whose body is handed on chunk by chunk as the upstream sends it."""
        target = self.registry.get(request.integration)
        prepared = self._prepare(target, request)
        deadline = _overall_deadline(request)
        meta = CallMetrics(integration=target.name)
        answer, integration, permit = await self._through_chain(
            target, request, prepared, deadline, meta, streaming=True
        )
        headers = tuple(strip_hop_by_hop(answer.headers.multi_items(), decoded=True))
        if answer.response is None:  # a failure answer, read whole
            body = _once(answer.body)
            if permit is not None:
                permit.release()
            return ResponseStream(answer.status, headers, body, meta)
        usage = SSEUsage() if integration.llm else None
        relay = self._relay(integration, answer, meta, permit, usage, request, prepared)
        return ResponseStream(answer.status, headers, relay, meta)

    # -- the chain of integrations ----------------------------------------------------------

    async def _call_chain(
        self,
        target: Integration,
        request: OutboundRequest,
        prepared: Prepared,
        deadline: float | None,
    ) -> OutboundResponse:
        meta = CallMetrics(integration=target.name)
        answer, integration, permit = await self._through_chain(
            target, request, prepared, deadline, meta, streaming=False
        )
        usage, model = None, ""
        if integration.llm and answer.status < 300:
            usage, model = read_answer(answer.body)
        if permit is not None:
            if usage is not None:
                permit.correct(usage.total)
            permit.release()
        if integration.llm and self._hub.has_subscribers(LlmUsage):
            self._publish_llm(integration, request, prepared, answer, meta, usage, model)
        headers = tuple(strip_hop_by_hop(answer.headers.multi_items(), decoded=True))
        return OutboundResponse(answer.status, headers, answer.body, meta)

    def _publish_llm(
        self,
        integration: Integration,
        request: OutboundRequest,
        prepared: Prepared,
        answer: Answer | None,
        meta: CallMetrics,
        usage: TokenUsage | None,
        model: str,
        *,
        streamed: bool = False,
    ) -> None:
        status = answer.status if answer is not None else 0
        self._hub.publish(
            LlmUsage(
                integration=integration.name,
                caller=request.caller,
                provider=integration.llm or "",
                endpoint="/" + prepared.path_qs.partition("?")[0],
                request_model=request_model(request.body),
                response_model=model,
                input_tokens=usage.input_tokens if usage else -1,
                output_tokens=usage.output_tokens if usage else -1,
                duration=meta.upstream_duration,
                status=status,
                error_type="" if 0 < status < 400 else str(status or "error"),
                streamed=streamed,
            )
        )

    async def _through_chain(
        self,
        target: Integration,
        request: OutboundRequest,
        prepared: Prepared,
        deadline: float | None,
        meta: CallMetrics,
        *,
        streaming: bool,
    ) -> tuple[Answer, Integration, Permit | None]:
        """Try the target, then its fallbacks; returns the answer, who gave it, and the permit
        still held (released by the caller when the body has been handed on)."""
        chain = self.registry.chain(target)
        last_error: AgentError | None = None
        spent: tuple[Answer, Integration] | None = None  # a retryable failure answer, kept
        for index, integration in enumerate(chain):
            if index:
                try:
                    prepared = self._prepare(integration, request)
                except AgentError:
                    continue  # this fallback cannot take the request as it stands
                reason = last_error.reason if last_error else str(spent[0].status if spent else "")
                if self._hub.has_subscribers(FallbackUsed):
                    self._hub.publish(FallbackUsed(chain[index - 1].name, integration.name, reason))
            meta.integration = integration.name
            try:
                if integration.breaker is not None:
                    integration.breaker.allow()
                tokens = self._tokens(integration, request)
                permit = await integration.limiter.acquire(
                    1, deadline=deadline, caller=request.caller, tokens=tokens
                )
            except (CircuitOpen, RateLimited) as error:
                last_error = error
                continue
            meta.rate_limit_wait += permit.waited
            if integration.limited and self._hub.has_subscribers(RateLimitWaited):
                self._hub.publish(RateLimitWaited(integration.name, request.caller, permit.waited))
            try:
                answer = await self._attempts.run(
                    integration, prepared, meta, deadline, streaming=streaming
                )
            except AgentError as error:
                permit.release()
                if not _moves_on(error):
                    raise
                last_error = error
                continue
            except BaseException:
                permit.release()
                raise
            if answer.retryable_failure and index + 1 < len(chain):
                permit.release()
                if spent is None:
                    spent = (answer, integration)
                continue
            return answer, integration, permit
        if spent is not None:  # every fallback failed too: the first upstream answer is the truth
            meta.integration = spent[1].name
            return spent[0], spent[1], _NO_PERMIT
        assert last_error is not None
        raise last_error

    # -- steps ------------------------------------------------------------------------------

    @staticmethod
    def _prepare(integration: Integration, request: OutboundRequest) -> Prepared:
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
        return Prepared(
            method=method,
            url=integration.url_for(path, query),
            path_qs=f"{path}?{query}" if query else path,
            headers=headers,
            body=request.body,
            idempotent_key=bool(request.idempotency_key),
        )

    @staticmethod
    def _tokens(integration: Integration, request: OutboundRequest) -> int:
        if request.tokens > 0:
            return request.tokens
        if integration.token_budget and request.body:  # no budget: nothing to charge
            return estimate_tokens(request.body)
        return 0

    async def _relay(
        self,
        integration: Integration,
        answer: Answer,
        meta: CallMetrics,
        permit: Permit | None,
        usage: SSEUsage | None,
        request: OutboundRequest,
        prepared: Prepared,
    ) -> AsyncIterator[bytes]:
        response = answer.response
        assert response is not None
        started = time.monotonic() - meta.upstream_duration
        try:
            async for chunk in response.aiter_bytes():
                if chunk:
                    if usage is not None:
                        usage.feed(chunk)
                    yield chunk
        except httpx.HTTPError as exc:
            raise map_transport_error(
                exc, integration=integration.name, display_url=integration.display_url
            ) from None
        finally:
            meta.upstream_duration = time.monotonic() - started
            await response.aclose()
            if usage is not None:
                usage.close()
            if permit is not None:
                if usage is not None and usage.usage is not None:
                    permit.correct(usage.usage.total)
                permit.release()
            if integration.llm and self._hub.has_subscribers(LlmUsage):
                self._publish_llm(
                    integration,
                    request,
                    prepared,
                    answer,
                    meta,
                    usage.usage if usage else None,
                    "",
                    streamed=True,
                )


def _overall_deadline(request: OutboundRequest) -> float | None:
    """The whole call's deadline: its own timeout, else the gRPC deadline (the shorter)."""
    deadline = request.deadline
    if request.timeout:
        own = time.monotonic() + request.timeout
        deadline = own if deadline is None else min(deadline, own)
    return deadline


def _moves_on(error: AgentError) -> bool:
    """Errors after which the next fallback is worth trying."""
    return error.reason in ("UPSTREAM_UNREACHABLE", "UPSTREAM_TIMEOUT", "CIRCUIT_OPEN")


async def _once(body: bytes) -> AsyncIterator[bytes]:
    if body:
        yield body
