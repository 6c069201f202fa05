"""Load generator processes (asyncio + uvloop): gRPC ``Call``/``CallStream`` through a hop,
httpx straight to the upstream (plain or streamed), or aiohttp to an HTTP proxy (the peers).

``run_worker(spec)`` runs in a spawned process (one per client process) and drives one phase:

* ``closed``: ``concurrency`` callers each issue the next call as soon as the previous one
  returns, from ``start_at`` until ``start_at + warmup + duration`` (saturation throughput);
* ``open``: calls are issued at a fixed arrival rate whether or not earlier ones returned
  (latency at a given load; a call in flight over ``max_inflight`` is dropped and counted).

Only calls *started* inside the measured window (after ``warmup``) give latencies; throughput
counts calls *completed* inside it. Every loop is bounded by ``max_calls`` and by time, and the
worker waits at most ``drain`` seconds for stragglers. Targets are loopback addresses only.

Kinds (``spec["kind"]``): ``grpc`` (unary ``Call``), ``grpc_stream`` (``CallStream``: time to
the first data byte and bytes received are recorded too), ``httpx`` (direct, body read whole),
``httpx_stream`` (direct, body streamed: the baseline of ``grpc_stream``), ``http`` (aiohttp
client posting the OpenAI request to an HTTP proxy: nginx, LiteLLM, Portkey).
"""

from __future__ import annotations

import asyncio
import itertools
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
    ttfbs: list[float] = []
    errors: Counter[str] = Counter()
    state = {"issued": 0, "done_in_window": 0, "ok_in_window": 0, "dropped": 0, "max_lag": 0.0}
    state["bytes_in_window"] = 0
    cpu: dict[str, float] = {}

    async def one() -> None:
        t0 = time.monotonic()
        first: float | None = None
        nbytes = 0
        try:
            error, first, nbytes = await call()
        except Exception as exc:
            error = _error_name(exc)
        t1 = time.monotonic()
        if t_begin <= t1 < t_end:
            state["done_in_window"] += 1
            if error is None:
                state["ok_in_window"] += 1
                state["bytes_in_window"] += nbytes
        if t0 >= t_begin and t0 < t_end:
            if error is None:
                latencies.append(t1 - t0)
                if first is not None:
                    ttfbs.append(first - t0)
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
        "ttfbs": ttfbs,
        "bytes_in_window": state["bytes_in_window"],
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


Result = tuple[str | None, float | None, int]  # (error or None, time of first byte, bytes)


async def _make_caller(spec: dict[str, Any]) -> tuple[Any, Any]:
    """Returns ``call() -> Result`` and ``close()`` for the spec's kind."""
    body: bytes = spec["body"]
    expect_len: int | None = spec.get("expect_len")
    timeout = spec["call_timeout"]
    kind = spec["kind"]
    if kind in ("grpc", "grpc_stream"):
        import grpc

        from agent.api.kilo.agent.v1 import agent_pb2 as pb
        from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc

        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        # several channels = several TCP connections (own subchannel pools), so that calls
        # spread over the worker processes of a SO_REUSEPORT server
        n_channels = max(1, int(spec.get("channels", 1)))
        if n_channels > 1:
            options.append(("grpc.use_local_subchannel_pool", 1))
        channels = [
            grpc.aio.insecure_channel(spec["target"], options=options) for _ in range(n_channels)
        ]
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), timeout=10)
        stubs = [pb_grpc.IntegrationAgentStub(channel) for channel in channels]
        turn = itertools.count()
        request = pb.CallRequest(
            integration=spec["integration"],
            method="POST",
            path=spec["path"],
            headers=[pb.Header(name="content-type", value="application/json")],
            body=body,
        )

        async def call() -> Result:
            stub = stubs[next(turn) % n_channels]
            response = await stub.Call(request, timeout=timeout)
            if response.status != 200:
                return f"http_{response.status}", None, 0
            n = len(response.body)
            if expect_len is not None and n != expect_len:
                return "bad_body", None, n
            return None, None, n

        async def call_stream() -> Result:
            status, first, n, meta = 0, None, 0, False
            stub = stubs[next(turn) % n_channels]
            async for chunk in stub.CallStream(request, timeout=timeout):
                part = chunk.WhichOneof("part")
                if part == "data":
                    if first is None:
                        first = time.monotonic()
                    n += len(chunk.data)
                elif part == "start":
                    status = chunk.start.status
                elif part == "meta":
                    meta = True
            if status != 200:
                return f"http_{status}", first, n
            if (expect_len is not None and n != expect_len) or not meta:
                return "bad_body", first, n
            return None, first, n

        async def close() -> None:
            for channel in channels:
                await channel.close()

        return (call_stream if kind == "grpc_stream" else call), close

    if kind == "http":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
        )
        url = spec["target"] + spec["path"]
        headers = dict(spec.get("headers") or {})
        headers.setdefault("content-type", "application/json")
        contains: bytes = spec.get("expect_contains") or b""

        async def call_http() -> Result:
            async with session.post(url, data=body, headers=headers) as response:
                data = await response.read()
            if response.status != 200:
                return f"http_{response.status}", None, len(data)
            if expect_len is not None and len(data) != expect_len:
                return "bad_body", None, len(data)
            if contains and contains not in data:
                return "bad_body", None, len(data)
            return None, None, len(data)

        return call_http, session.close

    import httpx

    http2 = bool(spec.get("http2"))
    limits = httpx.Limits(**spec["limits"]) if spec.get("limits") else httpx.Limits()
    client = httpx.AsyncClient(
        http1=not http2,
        http2=http2,
        limits=limits,
        timeout=timeout,
        trust_env=False,
    )
    url = spec["target"] + spec["path"]
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench-not-a-secret"}

    async def call_httpx() -> Result:
        response = await client.post(url, content=body, headers=headers)
        if response.status_code != 200:
            return f"http_{response.status_code}", None, 0
        n = len(response.content)
        if expect_len is not None and n != expect_len:
            return "bad_body", None, n
        return None, None, n

    async def call_httpx_stream() -> Result:
        first, n = None, 0
        async with client.stream("POST", url, content=body, headers=headers) as response:
            async for data in response.aiter_raw():
                if data:
                    if first is None:
                        first = time.monotonic()
                    n += len(data)
        if response.status_code != 200:
            return f"http_{response.status_code}", first, n
        if expect_len is not None and n != expect_len:
            return "bad_body", first, n
        return None, first, n

    return (call_httpx_stream if kind == "httpx_stream" else call_httpx), client.aclose


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="A module, not a program: run_all.py, bench_call.py, bench_telemetry.py and "
        "profile_call.py spawn its workers.",
    ).parse_args()
