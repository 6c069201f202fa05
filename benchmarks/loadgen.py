"""Load generator processes (asyncio + uvloop): gRPC ``Call`` through a hop, or httpx direct.

``run_worker(spec)`` runs in a spawned process (one per client process) and drives one phase:

* ``closed``: ``concurrency`` callers each issue the next call as soon as the previous one
  returns, from ``start_at`` until ``start_at + warmup + duration`` (saturation throughput);
* ``open``: calls are issued at a fixed arrival rate whether or not earlier ones returned
  (latency at a given load; a call in flight over ``max_inflight`` is dropped and counted).

Only calls *started* inside the measured window (after ``warmup``) give latencies; throughput
counts calls *completed* inside it. Every loop is bounded by ``max_calls`` and by time, and the
worker waits at most ``drain`` seconds for stragglers. Targets are loopback addresses only.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

_LOOPBACK = ("127.", "localhost", "[::1]", "http://127.", "http://localhost", "http://[::1]")


def _check_loopback(target: str) -> None:
    if not target.startswith(_LOOPBACK):
        raise ValueError(f"load goes to loopback only, not {target!r}")


def warm(_: int) -> int:
    """Imports the heavy modules once so that phases start on time; returns the pid."""
    import grpc  # noqa: F401
    import httpx  # noqa: F401
    import uvloop  # noqa: F401

    from agent.api.kilo.agent.v1 import agent_pb2  # noqa: F401

    time.sleep(0.3)  # keeps this worker busy so the next warm() lands on another process
    return os.getpid()


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import uvloop

    _check_loopback(spec["target"])
    return uvloop.run(_run(spec))


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    call, close = await _make_caller(spec)
    start_at: float = spec["start_at"]
    t_begin = start_at + spec["warmup"]
    t_end = t_begin + spec["duration"]
    max_calls: int = spec["max_calls"]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    state = {"issued": 0, "done_in_window": 0, "ok_in_window": 0, "dropped": 0, "max_lag": 0.0}
    cpu: dict[str, float] = {}

    async def one() -> None:
        t0 = time.monotonic()
        try:
            error = await call()
        except Exception as exc:
            error = _error_name(exc)
        t1 = time.monotonic()
        if t_begin <= t1 < t_end:
            state["done_in_window"] += 1
            if error is None:
                state["ok_in_window"] += 1
        if t0 >= t_begin and t0 < t_end:
            if error is None:
                latencies.append(t1 - t0)
            else:
                errors[error] += 1

    async def meter() -> None:
        await _sleep_until(t_begin)
        cpu["start"] = _cpu_seconds()
        await _sleep_until(t_end)
        cpu["end"] = _cpu_seconds()

    meter_task = asyncio.create_task(meter())
    await _sleep_until(start_at)
    if spec["mode"] == "closed":

        async def user() -> None:
            while time.monotonic() < t_end and state["issued"] < max_calls:
                state["issued"] += 1
                await one()

        users = [asyncio.create_task(user()) for _ in range(spec["concurrency"])]
        await asyncio.wait(users, timeout=t_end - time.monotonic() + spec["drain"])
        pending = [u for u in users if not u.done()]
    else:
        rate: float = spec["rate"]
        total = min(max_calls, int(rate * (spec["warmup"] + spec["duration"])))
        max_inflight: int = spec["max_inflight"]
        tasks: set[asyncio.Task[None]] = set()
        for i in range(total):
            due = start_at + i / rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                state["max_lag"] = max(state["max_lag"], now - due)
            if len(tasks) >= max_inflight:
                state["dropped"] += 1
                continue
            state["issued"] += 1
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=spec["drain"])
        pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    errors["unfinished"] += len(pending)
    if not errors["unfinished"]:
        del errors["unfinished"]
    await asyncio.wait_for(meter_task, timeout=spec["drain"] + 1)
    await close()
    return {
        "pid": os.getpid(),
        "latencies": latencies,
        "errors": dict(errors),
        "issued": state["issued"],
        "done_in_window": state["done_in_window"],
        "ok_in_window": state["ok_in_window"],
        "dropped": state["dropped"],
        "max_send_lag_ms": state["max_lag"] * 1000,
        "client_cpu_s": cpu.get("end", 0.0) - cpu.get("start", 0.0),
    }


async def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _error_name(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            return f"grpc_{code().name}"
        except Exception:
            pass
    return type(exc).__name__


async def _make_caller(spec: dict[str, Any]) -> tuple[Any, Any]:
    """Returns ``call() -> None | error name`` and ``close()`` for the spec's kind."""
    body: bytes = spec["body"]
    expect_len: int = spec["expect_len"]
    if spec["kind"] == "grpc":
        import grpc

        from agent.api.kilo.agent.v1 import agent_pb2 as pb
        from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc

        channel = grpc.aio.insecure_channel(spec["target"])
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
        stub = pb_grpc.IntegrationAgentStub(channel)
        request = pb.CallRequest(
            integration=spec["integration"],
            method="POST",
            path=spec["path"],
            headers=[pb.Header(name="content-type", value="application/json")],
            body=body,
        )
        timeout = spec["call_timeout"]

        async def call() -> str | None:
            response = await stub.Call(request, timeout=timeout)
            if response.status != 200:
                return f"http_{response.status}"
            if len(response.body) != expect_len:
                return "bad_body"
            return None

        async def close() -> None:
            await channel.close()

        return call, close

    import httpx

    http2 = bool(spec.get("http2"))
    limits = httpx.Limits(**spec["limits"]) if spec.get("limits") else httpx.Limits()
    client = httpx.AsyncClient(
        http1=not http2,
        http2=http2,
        limits=limits,
        timeout=spec["call_timeout"],
        trust_env=False,
    )
    url = spec["target"] + spec["path"]
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench-not-a-secret"}

    async def call_httpx() -> str | None:
        response = await client.post(url, content=body, headers=headers)
        if response.status_code != 200:
            return f"http_{response.status_code}"
        if len(response.content) != expect_len:
            return "bad_body"
        return None

    return call_httpx, client.aclose
