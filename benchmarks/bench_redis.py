"""What a ``scope: global`` limit costs next to a local one, in one run, on one machine.

Two levels, each alternating local and global phases (``--repeats``, medians reported):

1. **limiter**: ``acquire()`` + ``release()`` in-process on uvloop, the LocalLimiter vs the
   RedisLimiter (one EVALSHA round trip to a private ``redis-server`` on loopback); rates high
   enough that no call ever waits, so the figures are the pure cost of the decision.
   Sequential (latency p50/p99) and ``--concurrency`` loops (calls/s).
2. **agent**: gRPC ``Call`` through one real agent process (with its RedisRuntime) to a loopback
   upstream (``benchmarks/upstream.py``: nginx if installed, else aiohttp) for two integrations
   identical but for ``scope``; closed loop at ``--concurrency``: calls/s and p50/p99.

    .venv/bin/python benchmarks/bench_redis.py [--duration 3] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import uvloop
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.api.kilo.agent.v1 import agent_pb2 as pb  # noqa: E402
from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc  # noqa: E402
from agent.config.models import RedisConfig  # noqa: E402
from agent.policies import Limiter, LocalLimiter  # noqa: E402
from agent.redis import RedisRuntime, hiredis_available  # noqa: E402
from benchmarks.upstream import CHAT_PATH, chat_request_body, start_upstream  # noqa: E402
from tests.support.process import AgentProcess  # noqa: E402
from tests.support.redis_server import redis_server_at  # noqa: E402

RATE = 1e7  # never the bottleneck: measures the decision, not waiting


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def limiter_phase(lim: Limiter, seconds: float, concurrency: int) -> dict[str, float]:
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            permit = await lim.acquire()
            permit.release()
            lat.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "calls_per_s": len(lat) / elapsed,
        "p50_us": pct(lat, 0.5) * 1e6,
        "p99_us": pct(lat, 0.99) * 1e6,
    }


async def bench_limiters(url: str, args: argparse.Namespace) -> dict[str, Any]:
    runtime = RedisRuntime(RedisConfig.model_validate({"url": url}))
    await runtime.start()
    try:
        local = LocalLimiter(integration="b", requests_per_second=RATE, burst=RATE)
        glob = runtime.limiter("b", requests_per_second=RATE, burst=RATE)
        out: dict[str, Any] = {}
        for conc in (1, args.concurrency):
            runs: dict[str, list[dict[str, float]]] = {"local": [], "global": []}
            for _ in range(args.repeats):
                for name, lim in (("local", local), ("global", glob)):
                    runs[name].append(await limiter_phase(lim, args.duration, conc))
            out[f"concurrency_{conc}"] = {n: median(r) for n, r in runs.items()}
        return out
    finally:
        await runtime.aclose()


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}


def agent_config(upstream: str, redis: str) -> dict[str, Any]:
    def integration(scope: str) -> dict[str, Any]:
        return {
            "base_url": upstream,
            "retry": {"max_attempts": 1},
            "rate_limit": {
                "requests_per_second": RATE,
                "burst": RATE,
                "scope": scope,
                "adaptive": False,
            },
        }

    return {
        "listen": {"grpc": "127.0.0.1:0"},
        "telemetry": {"audit_log": "off"},
        "redis": {"url": redis},
        "integrations": {"local": integration("local"), "global": integration("global")},
    }


def start_agent(config: dict[str, Any], workdir: Path) -> AgentProcess:
    import threading

    path = workdir / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "none"}
    args = [sys.executable, "-m", "agent", "serve", "--config", str(path)]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    agent = AgentProcess(proc)
    for stream in (proc.stderr, proc.stdout):
        pump = threading.Thread(target=agent._pump, args=(stream,), daemon=True)
        pump.start()
        agent._pumps.append(pump)
    agent.address = agent.wait_for_line(lambda r: r.get("msg") == "serving")["address"]
    return agent


async def agent_phase(
    stub: pb_grpc.IntegrationAgentStub, name: str, seconds: float, concurrency: int
) -> dict[str, float]:
    lat: list[float] = []
    errors = 0
    body = chat_request_body()
    request = pb.CallRequest(integration=name, method="POST", path=CHAT_PATH, body=body)
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                answer = await stub.Call(request, timeout=10)
                ok = answer.status == 200
            except grpc.aio.AioRpcError:
                ok = False
            if ok:
                lat.append(time.perf_counter() - t)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "calls_per_s": len(lat) / elapsed,
        "p50_ms": pct(lat, 0.5) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
        "errors": errors,
    }


async def bench_agent(address: str, args: argparse.Namespace) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.IntegrationAgentStub(channel)
        for name in ("local", "global"):  # warm-up: connections, script, caches
            await agent_phase(stub, name, 0.5, args.concurrency)
        runs: dict[str, list[dict[str, float]]] = {"local": [], "global": []}
        for _ in range(args.repeats):
            for name in ("local", "global"):
                runs[name].append(await agent_phase(stub, name, args.duration, args.concurrency))
        return {n: median(r) for n, r in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per phase")
    parser.add_argument("--repeats", type=int, default=3, help="alternating phases per mode")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is missing: run scripts/system-deps.sh", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        redis = redis_server_at(Path(tmp))
        upstream = start_upstream()
        agent = None
        try:
            report: dict[str, Any] = {
                "hiredis": hiredis_available(),
                "cpus": os.cpu_count(),
                "upstream": upstream.kind,
                "limiter": uvloop.run(bench_limiters(redis.url, args)),
            }
            agent = start_agent(
                agent_config(f"http://127.0.0.1:{upstream.port}", redis.url), Path(tmp)
            )
            report["agent"] = uvloop.run(bench_agent(agent.address, args))
            report["agent_concurrency"] = args.concurrency
        finally:
            if agent is not None:
                agent.stop()
            upstream.stop()
            redis.stop()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
