"""``kilo-agent demo``: start a fake upstream and an agent on loopback, and show each policy act.

The steps run in order against one in-process agent (uvloop, as ``serve`` runs it) through a real
``grpc.aio`` client. Each step checks that the policy did what the title says, so the tour is
also a smoke test: exit 0 when every step behaved, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import grpc

from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc
from agent.app import AgentApp, _loop_factory
from agent.config import parse_config
from agent.demo.client import DemoClient
from agent.demo.fake_upstream import FakeUpstream
from agent.demo.render import Outcome, Printer, seconds
from agent.demo.token_refresh import StepResult, token_refresh_step
from agent.errors import ConfigError

__all__ = ["Pace", "run_demo"]

_TOUR_LIMIT = 60.0  # seconds: the tour stops itself, whatever happens


@dataclass(frozen=True, slots=True)
class Pace:
    """The tour's timings; ``--fast`` shrinks the waits (for tests), not what is shown."""

    queue_rps: float
    queue_wait: float  # max_wait of the queued burst
    backoff: float  # retry initial_backoff
    open_for: float  # the breaker's open_for
    token_lifetime: float  # expires_in of the demo's OAuth tokens

    @classmethod
    def of(cls, fast: bool) -> Pace:
        if fast:
            return cls(queue_rps=8, queue_wait=1.0, backoff=0.02, open_for=0.5, token_lifetime=2.0)
        return cls(queue_rps=2, queue_wait=3.0, backoff=0.1, open_for=2.0, token_lifetime=3.0)


def agent_config(upstream: str, unreachable: str, pace: Pace) -> dict[str, Any]:
    """One integration per step, all on the fake upstream (``primary`` on a refusing port)."""
    return {
        "listen": {"grpc": "127.0.0.1:0"},
        "server": {"grace_period": "2s"},
        "telemetry": {"audit_log": "off"},
        "integrations": {
            "burst": {
                "base_url": upstream,
                "rate_limit": {
                    "requests_per_second": 2,
                    "burst": 3,
                    "max_wait": "0s",
                    "adaptive": False,
                },
            },
            "queue": {
                "base_url": upstream,
                "rate_limit": {
                    "requests_per_second": pace.queue_rps,
                    "burst": 3,
                    "max_wait": pace.queue_wait,
                    "adaptive": False,
                },
            },
            "flaky": {
                "base_url": upstream,
                "retry": {
                    "max_attempts": 3,
                    "initial_backoff": pace.backoff,
                    "max_backoff": pace.backoff * 5,
                    "budget": 1.0,
                },
            },
            "breaker": {
                "base_url": upstream,
                "retry": {"max_attempts": 1},
                "circuit_breaker": {
                    "minimum_calls": 4,
                    "failure_rate": 0.5,
                    "open_for": pace.open_for,
                    "half_open_calls": 1,
                },
            },
            "primary": {
                "base_url": unreachable,
                "timeout": "2s",
                "retry": {"max_attempts": 1},
                "fallback": ["backup"],
            },
            "backup": {"base_url": upstream, "retry": {"max_attempts": 1}},
            "cache": {"base_url": upstream, "cache": {"ttl": "30s"}},
        },
    }


@dataclass
class Tour:
    client: DemoClient
    upstream: FakeUpstream
    printer: Printer
    pace: Pace
    unreachable: str
    problems: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(what)

    def show(self, *outcomes: Outcome, passed_first: bool = False) -> None:
        """Rows in the order the answers came (a burst: the calls that went first)."""
        if passed_first:
            ordered = sorted(outcomes, key=lambda o: (not o.ok, o.call))
        else:
            ordered = sorted(outcomes, key=lambda o: o.at)
        for outcome in ordered:
            self.printer.row(outcome)
            if outcome.trace_id:
                self.traces.append(outcome.trace_id)

    async def burst(self, integration: str) -> list[Outcome]:
        calls = [self.client.call(integration, "/items", label=f"#{i} ") for i in range(1, 9)]
        return list(await asyncio.gather(*calls))

    async def run(self) -> None:
        await self.rate_limit()
        await self.retry()
        await self.breaker()
        await self.fallback()
        await self.cache()

    async def rate_limit(self) -> None:
        p = self.printer
        p.step("1a", "Rate limit, 8 calls at once: 2 req/s, burst 3, max_wait 0 -> 3 go")
        before = self.upstream.hits("/items")
        outcomes = await self.burst("burst")
        self.show(*outcomes, passed_first=True)
        refused = [o for o in outcomes if o.reason == "RATE_LIMITED"]
        reached = self.upstream.hits("/items") - before
        p.note(f"upstream got {reached} requests; the {len(refused)} refused never left the agent")
        self.expect(sum(o.ok for o in outcomes) == 3, "1a: 3 of the 8 calls should pass")
        self.expect(len(refused) == 5, "1a: 5 calls should be RATE_LIMITED")
        self.expect(all(o.retry_after for o in refused), "1a: RATE_LIMITED without RetryInfo")

        rps, wait = self.pace.queue_rps, self.pace.queue_wait
        p.step(
            "1b",
            f"Same burst, {rps:g} req/s, burst 3, max_wait {seconds(wait)} -> calls queue, all go",
        )
        outcomes = await self.burst("queue")
        self.show(*outcomes)
        longest = max((o.wait or 0.0) for o in outcomes)
        p.note(f"all 8 answered; the last waited {seconds(longest)} for its slot")
        self.expect(all(o.ok for o in outcomes), "1b: every queued call should pass")
        self.expect(longest > 0.1, "1b: the queued calls should show a rate_limit_wait")

    async def retry(self) -> None:
        p = self.printer
        p.step("2", "Retry: /flaky answers 503 twice, then 200; max_attempts 3, backoff")
        before = len(self.upstream.statuses("/flaky"))
        outcome = await self.client.call("flaky", f"/flaky?fail=2&id={secrets.token_hex(4)}")
        self.show(outcome)
        seen = ", ".join(map(str, self.upstream.statuses("/flaky")[before:]))
        p.note(f"upstream answered {seen}; the app got one 200 ({outcome.attempts} attempts)")
        if outcome.trace_id:
            p.note(f"trace {outcome.trace_id}: a span per attempt")
        self.expect(outcome.status == 200, "2: the flaky call should end in 200")
        self.expect(outcome.attempts == 3, "2: the flaky call should take 3 attempts")

    async def breaker(self) -> None:
        p, up = self.printer, self.upstream
        p.step(
            "3",
            "Breaker on /orders (500s): minimum_calls 4, failure_rate 0.5, "
            f"open_for {seconds(self.pace.open_for)}",
        )
        failures = [await self.client.call("breaker", "/orders") for _ in range(4)]
        self.show(*failures)
        state = DemoClient.circuit(await self.client.status("breaker"))
        p.note(f"4 failures in 4 calls: ListIntegrations says the breaker is {state}")
        before = up.hits("/orders")
        refused = [await self.client.call("breaker", "/orders") for _ in range(2)]
        self.show(*refused)
        touched = up.hits("/orders") - before
        delay = max((o.retry_after or 0.0) for o in refused)
        p.note(f"upstream hits while open: {touched}: the agent answered these alone")
        p.note(f"the upstream is repaired; the app waits the RetryInfo delay ({seconds(delay)})")
        up.healthy = True
        await asyncio.sleep(delay + 0.05)
        trial = await self.client.call("breaker", "/orders")
        trial.note = "half-open trial"
        self.show(trial)
        closed = DemoClient.circuit(await self.client.status("breaker"))
        p.note(f"the half-open trial succeeded: the breaker is {closed} again")
        self.expect(all(o.status == 500 for o in failures), "3: /orders should answer 500")
        self.expect(state == "OPEN", "3: the breaker should open after 4 failures")
        self.expect(
            all(o.reason == "CIRCUIT_OPEN" for o in refused), "3: calls should get CIRCUIT_OPEN"
        )
        self.expect(touched == 0, "3: an open breaker must not touch the upstream")
        self.expect(trial.ok and closed == "CLOSED", "3: the half-open trial should close it")

    async def fallback(self) -> None:
        p = self.printer
        p.step("4", f"Fallback: 'primary' ({self.unreachable}) is down; fallback: [backup]")
        outcome = await self.client.call("primary", "/items")
        self.show(outcome)
        p.note(
            f"the app asked 'primary'; meta.integration says '{outcome.integration}' "
            f"({outcome.attempts} attempts)"
        )
        self.expect(outcome.ok, "4: the fallback call should succeed")
        self.expect(outcome.integration == "backup", "4: 'backup' should answer")

    async def cache(self) -> None:
        p = self.printer
        p.step("5", "Cache: the same GET /catalog twice; cache ttl 30s")
        first = await self.client.call("cache", "/catalog")
        second = await self.client.call("cache", "/catalog")
        self.show(first, second)
        hits = self.upstream.hits("/catalog")
        p.note(f"upstream /catalog hits: {hits}; the second answer came from the cache")
        self.expect(first.ok and not first.cache_hit, "5: the first GET should reach upstream")
        self.expect(second.cache_hit and hits == 1, "5: the second GET should be a cache hit")


async def _tour(printer: Printer, pace: Pace) -> int:
    started = time.monotonic()
    secret = "kilo-demo-secret-" + secrets.token_hex(8)  # made up for this run
    upstream = FakeUpstream(client_secret=secret, token_lifetime=pace.token_lifetime)
    url = upstream.start()
    # Bound but never listening: every connection to it is refused -- the primary that is down.
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))
    unreachable = f"127.0.0.1:{refusing.getsockname()[1]}"
    try:
        app = AgentApp(parse_config(agent_config(url, f"http://{unreachable}", pace)))
        address = await app.start()
        try:
            printer.say("kilo-agent demo: each policy acting on real calls, all on loopback")
            printer.say(f"  fake upstream  {url}  (counts every request it gets)")
            printer.say(f"  agent          grpc://{address}  (the app below: a grpc.aio client)")
            printer.say()
            printer.header()
            async with grpc.aio.insecure_channel(address) as channel:
                client = DemoClient(pb_grpc.IntegrationAgentStub(channel), started)
                tour = Tour(client, upstream, printer, pace, unreachable)
                async with asyncio.timeout(_TOUR_LIMIT):
                    await tour.run()
                    step6 = await token_refresh_step(
                        printer,
                        upstream,
                        started=started,
                        secret=secret,
                        lifetime=pace.token_lifetime,
                    )
        finally:
            await app.stop()
    except TimeoutError:
        printer.say(f"UNEXPECTED: the tour did not finish within {_TOUR_LIMIT:.0f}s")
        return 1
    finally:
        refusing.close()
        upstream.stop()
    return _summary(printer, time.monotonic() - started, tour, step6)


def _summary(printer: Printer, took: float, tour: Tour, step6: StepResult) -> int:
    printer.say()
    problems = tour.problems + step6.problems
    if problems:
        for problem in problems:
            printer.say(f"UNEXPECTED {problem}")
        printer.say(f"Demo finished in {took:.1f}s with {len(problems)} unexpected result(s).")
        return 1
    token = "token refresh" if step6.ran else "(token refresh skipped)"
    printer.say(f"Done in {took:.1f}s: rate limit, retry, breaker, fallback, cache, {token}.")
    if tour.traces:
        printer.say(
            "Traces: every call has one (CallMeta.trace_id); set OTEL_EXPORTER_OTLP_ENDPOINT."
        )
    return 0


def run_demo(*, fast: bool = False, out: TextIO | None = None) -> int:
    """Run the tour on uvloop (as ``serve`` does); returns the exit code."""
    log = logging.getLogger("agent")
    level = log.level
    log.setLevel(logging.ERROR)  # the table is the output, not log lines
    printer = Printer(out)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_tour(printer, Pace.of(fast)))
    except (ConfigError, RuntimeError, OSError, grpc.RpcError) as exc:
        printer.say(f"kilo-agent demo: failed: {exc}")
        return 1
    finally:
        log.setLevel(level)
