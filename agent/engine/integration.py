"""The runtime object of one integration, built once from config and then only read.

Everything a call needs is precomputed here (URL prefix, static headers, forbidden header names,
the pooled client and the credential provider) so that the hot path does no config work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from agent.credentials import CredentialProvider, build_provider, transport_ca_file
from agent.engine.build import build_breaker, build_cache, build_limiter, build_retry
from agent.engine.types import OutboundResponse
from agent.events import EventHub
from agent.policies import CircuitBreaker, Limiter, ResponseCache, RetryPolicy, SingleFlight
from agent.policies.limiter import UnlimitedLimiter
from agent.transport import build_client

if TYPE_CHECKING:
    from agent.redis import RedisRuntime

__all__ = ["Integration", "origin_of"]

# What httpx's client would add; the engine builds requests itself (no per-call merging).
_DEFAULT_HEADERS = {
    "user-agent": "kilo-agent/0.1",
    "accept": "*/*",
    "accept-encoding": "gzip, deflate",
}


def origin_of(url: httpx.URL) -> str:
    """``scheme://host[:port]`` with the default port left out, for same-origin checks."""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}".lower()


@dataclass(frozen=True, slots=True, eq=False)
class Integration:
    """One configured integration, ready to serve calls."""

    name: str
    url_prefix: str  # base URL without trailing '/', e.g. "https://api.openai.com/v1"
    origin: str  # scheme://host[:port] of the base URL, for redirect checks
    display_url: str  # safe to log and show (webhook URLs are secrets)
    timeout: float
    max_body: int
    allow_paths: tuple[str, ...]
    static_headers: tuple[tuple[str, str], ...]
    forbidden_headers: frozenset[str]
    credentials: CredentialProvider
    client: httpx.AsyncClient  # owns the pool; the hot path calls its transport directly
    transport: httpx.AsyncBaseTransport
    request_extensions: dict[str, Any]  # per-request httpx extensions (timeouts), built once
    limiter: Limiter
    limited: bool  # some rate limit applies: waits are worth reporting (RateLimitWaited)
    breaker: CircuitBreaker | None
    retry: RetryPolicy
    cache: ResponseCache | None
    flights: SingleFlight[OutboundResponse]  # coalesces identical concurrent cacheable GETs
    failure_status: frozenset[int]  # HTTP answers the breaker counts as failures
    fallback: tuple[str, ...]
    llm: str | None  # gen_ai provider name for LLM integrations (token budgets, usage)
    token_budget: bool  # rate_limit.tokens_per_minute is set: calls are charged tokens
    config: Any  # the validated IntegrationConfig

    @classmethod
    def from_config(
        cls,
        name: str,
        cfg: Any,
        hub: EventHub,
        *,
        redis: RedisRuntime | None = None,
        local_share: float = 1.0,
    ) -> Integration:
        """Build the runtime object (client, credentials, policies) from an IntegrationConfig.

        With ``redis``, ``scope: global`` limits live there and token refreshes are fleet-wide.
        """
        base = cfg.effective_base_url().rstrip("/")
        credentials = build_provider(
            cfg.auth,
            path=f"integrations.{name}.auth",
            name=name,
            hub=hub,
            shared=redis.token_store() if redis is not None else None,
        )
        forbidden = set(cfg.auth.injected_headers())
        if credentials.secret_header:
            forbidden.add(credentials.secret_header)
        client = build_client(
            cfg.transport, timeout=cfg.timeout, ca_file=transport_ca_file(cfg.auth)
        )
        headers = dict(_DEFAULT_HEADERS)
        headers.update((k.lower(), v) for k, v in cfg.headers.items())
        limiter = build_limiter(name, cfg, hub, redis=redis, local_share=local_share)
        return cls(
            name=name,
            url_prefix=base,
            origin=origin_of(httpx.URL(base)),
            display_url=cfg.display_base_url(),
            timeout=cfg.timeout,
            max_body=cfg.max_body,
            allow_paths=tuple(cfg.allow_paths),
            static_headers=tuple(headers.items()),
            forbidden_headers=frozenset(forbidden),
            credentials=credentials,
            client=client,
            transport=client._transport,  # telemetry wraps this object's handle_async_request
            request_extensions={"timeout": client.timeout.as_dict()},
            limiter=limiter,
            limited=not isinstance(limiter, UnlimitedLimiter),
            breaker=build_breaker(name, cfg, hub),
            retry=build_retry(name, cfg, hub),
            cache=build_cache(cfg),
            flights=SingleFlight(),
            failure_status=frozenset(
                s for s in range(100, 600) if cfg.circuit_breaker.is_failure_status(s)
            ),
            fallback=tuple(cfg.fallback),
            llm=cfg.llm,
            token_budget=cfg.rate_limit.tokens_per_minute > 0,
            config=cfg,
        )

    def url_for(self, path: str, query: str) -> str:
        """Join a validated relative path (no leading '/') under the base URL."""
        url = f"{self.url_prefix}/{path}" if path else self.url_prefix
        return f"{url}?{query}" if query else url

    async def aclose(self) -> None:
        """Close the pooled connections and stop credential work."""
        await self.client.aclose()
        await self.credentials.aclose()
