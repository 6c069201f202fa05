"""Issue 7's benchmark suite: what a call through kilo-agent costs, next to calling the API
directly and next to peer gateways, in one run against the same loopback upstream.

Scenarios (each its own server process; see benchmarks/README.md):

* ``direct``        the app calls nginx itself with ``httpx.AsyncClient`` (the baseline);
* ``agent``         ``Call`` through ``python -m agent serve`` with everything on: local rate
                    limit (high enough never to bite), breaker, retries, a bearer credential,
                    OTel exporting OTLP/gRPC to a local sink, audit log to a file;
* ``agent-notel``   the same with ``OTEL_SDK_DISABLED=true`` and ``audit_log: off``;
* ``agent-redis``   ``agent-notel`` with ``scope: global`` on a private redis-server;
* ``direct-sse`` / ``agent-sse``  a canned 128-event SSE answer streamed (httpx / ``CallStream``):
                    time to first byte and throughput;
* ``direct-64k`` / ``agent-64k`` / ``direct-1m`` / ``agent-1m``  larger response bodies;
* ``nginx-proxy``, ``portkey``, ``litellm``  peers routing the same OpenAI request (peers.py);
* ``agent-w1`` / ``agent-w2`` / ``agent-w2-2cores``  when ``serve --workers`` exists.

Checks: the agent's RSS with 1,000 calls in flight, and one 100 MiB ``CallStream`` with the
agent's RSS sampled every 20 ms. Per scenario: calls/s at saturation (closed loop), p50/p90/p99
at a fixed rate (open loop, 200/s), latency added over the baseline, server CPU µs per call,
RSS idle / under load, and open-loop points at fractions of saturation for the chart.

Server under test pinned to core 0; harness, load generator, upstream, OTLP sink and redis to
core 1. Output: results/suite.json, results/suite.md, results/latency_vs_throughput.png, and the
results block of benchmarks/README.md (full runs only).

    .venv/bin/python benchmarks/run_all.py            # ~8 minutes (make bench)
    .venv/bin/python benchmarks/run_all.py --quick    # ~1.5 minutes, smoke test
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import bench_call  # noqa: E402
import loadgen  # noqa: E402
import peers  # noqa: E402
import upstream as upstream_mod  # noqa: E402

INTEGRATION = bench_call.INTEGRATION
RESULTS = HERE / "results"
README = HERE / "README.md"
BEGIN, END = "<!-- suite:begin -->", "<!-- suite:end -->"
HIGH_RATE = 1_000_000  # rate limit that never bites
OPEN_LOOP_MAX = 2_500  # two Python open-loop processes keep to schedule up to about this rate
WORKER_CHANNELS = 4  # gRPC connections per client process in the --workers scenarios

# name -> definition. kind: httpx | httpx_stream | grpc | grpc_stream | peer
SCENARIOS: dict[str, dict[str, Any]] = {
    "direct": {
        "kind": "httpx",
        "path": upstream_mod.CHAT_PATH,
        "size": 1024,
        "curve": True,
        "what": "app -> nginx with httpx.AsyncClient (defaults, keep-alive): the baseline",
    },
    "agent": {
        "kind": "grpc",
        "profile": "full",
        "size": 1024,
        "curve": True,
        "baseline": "direct",
        "what": "Call, everything on: limit, breaker, retry, bearer, OTLP export, audit file",
    },
    "agent-notel": {
        "kind": "grpc",
        "profile": "notel",
        "size": 1024,
        "curve": True,
        "baseline": "direct",
        "what": "Call, telemetry off (OTEL_SDK_DISABLED=true, audit_log: off)",
    },
    "agent-redis": {
        "kind": "grpc",
        "profile": "redis",
        "size": 1024,
        "curve": True,
        "baseline": "direct",
        "what": "agent-notel with rate_limit scope: global on a private redis-server",
    },
    "direct-aiohttp": {
        "kind": "http_direct",
        "path": upstream_mod.CHAT_PATH,
        "size": 1024,
        "what": "app -> nginx with aiohttp: the baseline of the peers (same client as theirs)",
    },
    "direct-sse": {
        "kind": "httpx_stream",
        "path": upstream_mod.SSE_PATH,
        "size": "sse",
        "what": "app -> nginx, SSE answer streamed with httpx",
    },
    "agent-sse": {
        "kind": "grpc_stream",
        "profile": "full",
        "path": "/sse/chat",
        "size": "sse",
        "baseline": "direct-sse",
        "what": "CallStream of the SSE answer, everything on",
    },
    "direct-64k": {
        "kind": "httpx",
        "path": upstream_mod.SIZED_PATH.format(size=65536),
        "size": 65536,
        "what": "direct, 64 KiB response",
    },
    "agent-64k": {
        "kind": "grpc",
        "profile": "full",
        "path": "/sized/65536",
        "size": 65536,
        "baseline": "direct-64k",
        "what": "Call, 64 KiB response, everything on",
    },
    "direct-1m": {
        "kind": "httpx",
        "path": upstream_mod.SIZED_PATH.format(size=1 << 20),
        "size": 1 << 20,
        "what": "direct, 1 MiB response",
    },
    "agent-1m": {
        "kind": "grpc",
        "profile": "full",
        "path": f"/sized/{1 << 20}",
        "size": 1 << 20,
        "baseline": "direct-1m",
        "what": "Call, 1 MiB response, everything on",
    },
    "nginx-proxy": {
        "kind": "peer",
        "curve": True,
        "baseline": "direct-aiohttp",
        "what": "nginx proxy_pass with upstream keep-alive (the native floor)",
    },
    "portkey": {
        "kind": "peer",
        "curve": True,
        "baseline": "direct-aiohttp",
        "what": "Portkey gateway (node), x-portkey-provider openai + custom host",
    },
    "litellm": {
        "kind": "peer",
        "curve": True,
        "baseline": "direct-aiohttp",
        "what": "LiteLLM proxy, 1 worker, model openai/gpt-4o-mini at the upstream",
    },
    "agent-w1": {
        "kind": "grpc",
        "profile": "notel",
        "workers": 1,
        "size": 1024,
        "baseline": "direct",
        "what": "agent-notel, serve --workers 1, core 0",
    },
    "agent-w1-2cores": {
        "kind": "grpc",
        "profile": "notel",
        "workers": 1,
        "pin": False,
        "size": 1024,
        "baseline": "direct",
        "what": "serve --workers 1, free to use both cores (load generator shares core 1)",
    },
    "agent-w2": {
        "kind": "grpc",
        "profile": "notel",
        "workers": 2,
        "size": 1024,
        "baseline": "direct",
        "what": "agent-notel, serve --workers 2, both workers on core 0 (split overhead)",
    },
    "agent-w2-2cores": {
        "kind": "grpc",
        "profile": "notel",
        "workers": 2,
        "pin": False,
        "size": 1024,
        "baseline": "direct",
        "what": "serve --workers 2 on both cores (load generator shares core 1)",
    },
}
DEFAULT = [
    "direct",
    "agent",
    "agent-notel",
    "agent-redis",
    "direct-aiohttp",
    "direct-sse",
    "agent-sse",
    "direct-64k",
    "agent-64k",
    "direct-1m",
    "agent-1m",
    "nginx-proxy",
    "portkey",
    "litellm",
]
WORKER_SCENARIOS = ["agent-w1", "agent-w2", "agent-w1-2cores", "agent-w2-2cores"]
QUICK = ["direct", "agent", "agent-notel", "direct-sse", "agent-sse", "nginx-proxy"]


# -- agent processes ---------------------------------------------------------------------------


def agent_yaml(base_url: str, profile: str, audit: Path, redis_url: str | None) -> str:
    scope = "global" if profile == "redis" else "local"
    lines = [
        'listen: {grpc: "127.0.0.1:50051"}',
        "integrations:",
        f"  {INTEGRATION}:",
        f'    base_url: "{base_url}"',
        f'    auth: {{type: bearer, token: "{bench_call.TOKEN}"}}',
        "    timeout: 30s",
        "    max_body: 10MiB",
        f"    rate_limit: {{requests_per_second: {HIGH_RATE}, burst: {HIGH_RATE}, max_wait: 2s, "
        f"scope: {scope}}}",
        "    circuit_breaker: {failure_rate: 0.5, minimum_calls: 10, window: 30s, open_for: 30s}",
        "    retry: {max_attempts: 3, initial_backoff: 100ms, on_status: [429, 502, 503, 504]}",
    ]
    audit_log = f'"{audit}"' if profile == "full" else "off"
    lines.append(f"telemetry: {{audit_log: {audit_log}}}")
    if redis_url:
        lines.append(f'redis: {{url: "{redis_url}"}}')
    return "\n".join(lines) + "\n"


def agent_env(profile: str, otlp_endpoint: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONUNBUFFERED"] = "0"
    if profile == "full" and otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
        env["OTEL_SERVICE_NAME"] = "kilo-agent-bench"
        # the SDK's own defaults otherwise: spans batched every 5 s, metrics every 60 s
    else:
        env["OTEL_SDK_DISABLED"] = "true"
    return env


def _preexec_unpinned() -> None:
    upstream_mod.die_with_parent()


def start_agent(
    profile: str,
    base_url: str,
    otlp_endpoint: str | None,
    redis_url: str | None = None,
    workers: int | None = None,
    pin: bool = True,
) -> bench_call.Server:
    workdir = tempfile.mkdtemp(prefix=f"kilo-bench-agent-{profile}-")
    address = f"127.0.0.1:{upstream_mod.free_port()}"
    audit = Path(workdir, "audit.jsonl")
    config = Path(workdir, "agent.yaml")
    config.write_text(agent_yaml(base_url, profile, audit, redis_url))
    argv = [sys.executable, "-m", "agent", "serve", "--config", str(config), "--listen", address]
    if workers:
        argv += ["--workers", str(workers)]
    log = Path(workdir, "server.log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=agent_env(profile, otlp_endpoint),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=bench_call._pin_server if pin else _preexec_unpinned,
        )
    server = bench_call.Server(
        f"agent-{profile}", proc, address, workdir, log, {"config": config.read_text()}
    )
    server.extra["audit"] = str(audit)
    try:
        bench_call._wait_ready(server)
        if workers and workers > 1:
            time.sleep(1.5)  # let every worker bind before load starts
    except Exception:
        server.stop()
        raise
    return server


def git_commit() -> str:
    """The agent code measured: short commit, plus "+dirty" when agent/ has local changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "agent"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + ("+dirty" if dirty else "")


def workers_supported() -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "agent", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    return "--workers" in out.stdout


class CountingSink:
    """A local OTLP/gRPC sink that counts export requests and spans and keeps nothing."""

    def __init__(self) -> None:
        from tests.support.otlp_receiver import OtlpReceiver

        sink = self
        self.trace_requests = self.metric_requests = self.spans = 0
        self._lock = threading.Lock()

        class Receiver(OtlpReceiver):
            def _add(self, target: list[Any], request: Any) -> None:
                with sink._lock:
                    if target is self.traces:
                        sink.trace_requests += 1
                        sink.spans += sum(
                            len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans
                        )
                    else:
                        sink.metric_requests += 1

        self.receiver = Receiver().start()
        self.endpoint = self.receiver.endpoint

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "trace_requests": self.trace_requests,
                "spans": self.spans,
                "metric_requests": self.metric_requests,
            }

    def stop(self) -> None:
        self.receiver.stop()


# -- phases ------------------------------------------------------------------------------------


def phase(
    ctx: dict[str, Any],
    spec: dict[str, Any],
    server_pid: int | None,
    *,
    mode: str,
    duration: float,
    rate: float | None = None,
    concurrency: int | None = None,
    clients: int | None = None,
    extra_pids: list[int] | None = None,
) -> dict[str, Any]:
    a = ctx["args"]
    ns = argparse.Namespace(
        warmup=a.warmup,
        duration=duration,
        rate=rate or a.rate,
        concurrency=concurrency or a.concurrency,
    )
    open_workers = 1 if ns.rate <= 700 else 2  # one Python process sends ~700/s on time
    workers = (clients or a.clients) if mode == "closed" else open_workers
    up = ctx["upstream"]
    return bench_call.run_phase(
        ctx["pool"],
        mode=mode,
        workers=workers,
        spec=spec,
        args=ns,
        server_pid=server_pid,
        upstream_pids=up.pids + (extra_pids or []),
        upstream_port=up.port,
    )


def expected_len(size: Any) -> int:
    return upstream_mod.sse_size() if size == "sse" else int(size)


def run_scenario(name: str, ctx: dict[str, Any]) -> dict[str, Any]:
    sc = SCENARIOS[name]
    args = ctx["args"]
    up = ctx["upstream"]
    result: dict[str, Any] = {
        "scenario": name,
        "what": sc["what"],
        "kind": sc["kind"],
        "baseline": sc.get("baseline"),
    }
    body = upstream_mod.chat_request_body()
    server: bench_call.Server | None = None
    extra_pids: list[int] = []
    try:
        if sc["kind"] in ("httpx", "httpx_stream", "http_direct"):
            spec: dict[str, Any] = {
                "kind": "http" if sc["kind"] == "http_direct" else sc["kind"],
                "headers": {"authorization": f"Bearer {bench_call.TOKEN}"},
                "target": f"http://127.0.0.1:{up.port}",
                "path": sc["path"],
                "expect_len": expected_len(sc["size"]),
            }
        elif sc["kind"] == "peer":
            try:
                server, pspec = peers.start(name, up.port)
            except peers.PeerUnavailable as exc:
                return dict(result, skipped=str(exc))
            result["version"] = server.extra.get("version")
            spec = dict(pspec, target=server.address)
        else:
            redis_url = None
            if sc["profile"] == "redis":
                redis = ctx.get("redis") or start_redis(ctx)
                if redis is None:
                    return dict(result, skipped=ctx["redis_error"])
                redis_url = redis.url
                if redis.proc is not None:
                    extra_pids.append(redis.proc.pid)
            if sc.get("workers") and not ctx["workers_supported"]:
                return dict(result, skipped="`serve --workers` does not exist (yet)")
            try:
                server = start_agent(
                    sc["profile"],
                    up.base_url,
                    ctx["sink"].endpoint if ctx.get("sink") else None,
                    redis_url,
                    sc.get("workers"),
                    sc.get("pin", True),
                )
            except Exception as exc:
                return dict(result, skipped=f"agent did not start: {exc}")
            spec = {
                "kind": sc["kind"],
                "target": server.address,
                "integration": INTEGRATION,
                "path": sc.get("path", "/chat/completions"),
                "expect_len": expected_len(sc["size"]),
                "channels": WORKER_CHANNELS if sc.get("workers") else 1,
            }
            result["agent_config"] = server.extra["config"]
        spec["body"] = body
        if server is not None:
            result["server_pid"] = server.pid
            time.sleep(0.5)
            result["rss_idle_mib"] = bench_call._rss(server.pid) / 2**20
        pid = server.pid if server else None
        print(f"  {name}: saturation ...", file=sys.stderr)
        sat = phase(ctx, spec, pid, mode="closed", duration=args.duration, extra_pids=extra_pids)
        result["saturation"] = sat
        if server is not None:
            result["rss_load_mib"] = sat["server_rss_peak_mib"]
        capacity = sat["calls_per_s"]
        if capacity >= 1.25 * args.rate:
            print(f"  {name}: {args.rate:g}/s ...", file=sys.stderr)
            result["fixed_rate"] = phase(
                ctx, spec, pid, mode="open", duration=args.duration, extra_pids=extra_pids
            )
        else:
            result["fixed_rate"] = None
            result["fixed_rate_skipped"] = (
                f"saturates at {capacity:,.0f} calls/s, below 1.25 x {args.rate:g}/s"
            )
        if sc.get("curve") and args.curve_fractions:
            points = []
            done_rates: list[float] = []
            for frac in args.curve_fractions:
                rate = round(min(frac * capacity, OPEN_LOOP_MAX))
                if rate < 10 or any(abs(rate - r) < 0.1 * r for r in (args.rate, *done_rates)):
                    continue
                done_rates.append(rate)
                print(f"  {name}: curve {rate}/s ...", file=sys.stderr)
                p = phase(
                    ctx,
                    spec,
                    pid,
                    mode="open",
                    rate=rate,
                    duration=args.curve_duration,
                    extra_pids=extra_pids,
                )
                points.append(_point(p, rate))
            if result["fixed_rate"]:
                points.append(_point(result["fixed_rate"], args.rate))
            result["curve"] = sorted(points, key=lambda p: p["target_rate"])
        if name == "agent" and server is not None and args.big_concurrency:
            print(f"  {name}: {args.big_concurrency} calls in flight ...", file=sys.stderr)
            c = phase(
                ctx,
                spec,
                pid,
                mode="closed",
                duration=args.big_duration,
                concurrency=args.big_concurrency,
            )
            result["concurrency_1000"] = {
                "concurrency": args.big_concurrency,
                "rss_peak_mib": c["server_rss_peak_mib"],
                "calls_per_s": c["calls_per_s"],
                "p50_ms": c["p50_ms"],
                "p99_ms": c["p99_ms"],
                "errors": c["errors"],
            }
    finally:
        if server is not None:
            result["exit_code"] = server.stop()
            audit = server.extra.get("audit")
            if audit and Path(audit).exists():
                with open(audit, "rb") as f:
                    result["audit_lines"] = sum(1 for _ in f)
            shutil.rmtree(server.workdir, ignore_errors=True)
    return result


def _point(p: dict[str, Any], rate: float) -> dict[str, Any]:
    keys = ("calls_per_s", "p50_ms", "p90_ms", "p99_ms", "server_cpu_us_per_call", "dropped")
    return {"target_rate": rate, **{k: p[k] for k in keys}, "errors": sum(p["errors"].values())}


def start_redis(ctx: dict[str, Any]) -> Any:
    if shutil.which("redis-server") is None:
        ctx["redis_error"] = "redis-server is not installed (scripts/system-deps.sh)"
        return None
    from tests.support.redis_server import redis_server_at

    ctx["redis_dir"] = tempfile.mkdtemp(prefix="kilo-bench-redis-")
    ctx["redis"] = redis_server_at(Path(ctx["redis_dir"]))
    return ctx["redis"]


# -- the 100 MiB stream ------------------------------------------------------------------------


def stream_big(ctx: dict[str, Any]) -> dict[str, Any]:
    """One CallStream of BIG_SIZE bytes; the agent's RSS sampled every 20 ms meanwhile."""
    import grpc
    import httpx

    from agent.api.kilo.agent.v1 import agent_pb2 as pb
    from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc

    up = ctx["upstream"]
    out: dict[str, Any] = {"size_mib": upstream_mod.BIG_SIZE / 2**20}
    # the baseline: the same body streamed by httpx straight from nginx, in this process
    t0 = time.monotonic()
    n = 0
    with (
        httpx.Client(trust_env=False, timeout=60) as client,
        client.stream(
            "POST", f"http://127.0.0.1:{up.port}{upstream_mod.BIG_PATH}", content=b"{}"
        ) as r,
    ):
        for data in r.iter_raw():
            n += len(data)
    out["direct_mib_per_s"] = n / 2**20 / (time.monotonic() - t0)
    server = start_agent("full", up.base_url, ctx["sink"].endpoint if ctx.get("sink") else None)
    try:
        time.sleep(0.5)
        idle = bench_call._rss(server.pid)
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(bench_call._rss(server.pid))
                stop.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        request = pb.CallRequest(
            integration=INTEGRATION, method="POST", path="/big/stream", body=b"{}"
        )
        t0 = time.monotonic()
        first = None
        n, status, chunks = 0, 0, 0
        try:
            with grpc.insecure_channel(server.address) as channel:
                stub = pb_grpc.IntegrationAgentStub(channel)
                for chunk in stub.CallStream(request, timeout=120):
                    part = chunk.WhichOneof("part")
                    if part == "start":
                        status = chunk.start.status
                    elif part == "data":
                        if first is None:
                            first = time.monotonic()
                        n += len(chunk.data)
                        chunks += 1
            error = None
        except grpc.RpcError as exc:
            error = f"{exc.code().name}: {exc.details()}"
        elapsed = time.monotonic() - t0
        stop.set()
        sampler.join(2)
        peak = max(samples or [idle])
        out.update(
            status=status,
            error=error,
            bytes=n,
            complete=n == upstream_mod.BIG_SIZE and error is None,
            chunks=chunks,
            seconds=round(elapsed, 3),
            mib_per_s=n / 2**20 / elapsed if elapsed else None,
            ttfb_ms=(first - t0) * 1000 if first else None,
            rss_idle_mib=idle / 2**20,
            rss_peak_mib=peak / 2**20,
            rss_growth_mib=(peak - idle) / 2**20,
            rss_samples=len(samples),
        )
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
    return out


# -- report ------------------------------------------------------------------------------------


_f = bench_call._f  # one formatter for both reports


def _errs(r: dict[str, Any]) -> str:
    total: dict[str, int] = {}
    for ph in ("saturation", "fixed_rate"):
        p = r.get(ph)
        if not p:
            continue
        for k, v in p["errors"].items():
            total[k] = total.get(k, 0) + v
        if p["dropped"]:
            total["dropped"] = total.get("dropped", 0) + p["dropped"]
    for pt in r.get("curve", []):
        if pt["errors"]:
            total["curve"] = total.get("curve", 0) + pt["errors"]
    return ", ".join(f"{k}={v}" for k, v in sorted(total.items())) or "0"


def added(r: dict[str, Any], by: dict[str, dict[str, Any]], key: str) -> float | None:
    base = by.get(r.get("baseline") or "")
    if not base or not r.get("fixed_rate") or not base.get("fixed_rate"):
        return None
    a, b = r["fixed_rate"].get(key), base["fixed_rate"].get(key)
    return None if a is None or b is None else a - b


def markdown(report: dict[str, Any]) -> str:
    rows = [r for r in report["scenarios"] if "skipped" not in r]
    by = {r["scenario"]: r for r in rows}
    s = report["settings"]
    m = report["machine"]
    v = m["versions"]
    lines = [
        f"Run {report['started']}, agent at commit {report['git']}, {report['elapsed_s']:.0f} s, "
        f"`{report['command']}`. Machine: "
        f"{m.get('CPU(s)', m['nproc'])} vCPU {m.get('Model name', '?')} "
        f"({m.get('Hypervisor vendor', 'bare metal')}), {m['mem_gib']} GiB, {m['platform']}, "
        f"Python {m['python']}; grpcio {v.get('grpcio')}, protobuf {v.get('protobuf')}, "
        f"httpx {v.get('httpx')}, aiohttp {v.get('aiohttp')}, uvloop {v.get('uvloop')}. "
        f"Upstream: **{report['upstream']['kind']}** {report['upstream']['version']}.",
        "",
        f"Server under test on core 0; load generator ({s['clients']} closed-loop processes, 1-2 "
        "open-loop), upstream, OTLP sink and redis on core 1. Saturation: closed loop, "
        f"{s['concurrency']} in flight, {s['duration']:g} s after {s['warmup']:g} s warm-up. "
        f"Latency: open loop at {s['rate']:g} calls/s for {s['duration']:g} s. Added latency is "
        "over the row's baseline: `direct` (httpx) of the same body for the agent, "
        "`direct-aiohttp` for the peers (driven by the same aiohttp client). Server CPU = "
        "user+system of the server's process tree ÷ calls completed. RSS idle = after start "
        "and one call; under load = peak during saturation.",
        "",
        "| scenario | calls/s @sat | server core @sat | server CPU µs/call @sat | client CPU "
        f"µs/call @sat | p50 / p90 / p99 ms @{s['rate']:g}/s | +p50 ms | +p99 ms | server CPU "
        f"µs/call @{s['rate']:g}/s | RSS idle / load MiB | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r["kind"] in ("httpx_stream", "grpc_stream"):
            continue
        sat, fr = r["saturation"], r.get("fixed_rate")
        lat = (
            f"{fr['p50_ms']:.2f} / {fr['p90_ms']:.2f} / {fr['p99_ms']:.2f}"
            if fr
            else f"n/a ({r.get('fixed_rate_skipped', '')})"
        )
        rss = (
            f"{r['rss_idle_mib']:.0f} / {r['rss_load_mib']:.0f}"
            if r.get("rss_idle_mib") is not None
            else "—"
        )
        name = r["scenario"] + (f" ({r['version']})" if r.get("version") else "")
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    _f(sat["calls_per_s"]),
                    _f(sat["server_core_util"] and sat["server_core_util"] * 100, "{:.0f}%"),
                    _f(sat["server_cpu_us_per_call"]),
                    _f(sat["client_cpu_us_per_call"]),
                    lat,
                    _f(added(r, by, "p50_ms"), "{:+.2f}"),
                    _f(added(r, by, "p99_ms"), "{:+.2f}"),
                    _f(fr and fr["server_cpu_us_per_call"]),
                    rss,
                    _errs(r),
                ]
            )
            + " |"
        )
    streams = [r for r in rows if r["kind"] in ("httpx_stream", "grpc_stream")]
    if streams:
        lines += [
            "",
            f"Streaming ({upstream_mod.SSE_EVENTS}-event SSE answer, "
            f"{upstream_mod.sse_size():,} bytes):",
            "",
            f"| scenario | streams/s @sat | MiB/s @sat | server CPU µs/stream @sat | TTFB p50 / "
            f"p99 ms @{s['rate']:g}/s | +TTFB p50 / p99 ms | whole stream p50 / p99 ms | "
            "RSS idle / load MiB | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in streams:
            sat, fr = r["saturation"], r.get("fixed_rate")
            ttfb = f"{fr['ttfb_p50_ms']:.2f} / {fr['ttfb_p99_ms']:.2f}" if fr else "—"
            add = "—"
            a50, a99 = added(r, by, "ttfb_p50_ms"), added(r, by, "ttfb_p99_ms")
            if a50 is not None and a99 is not None:
                add = f"{a50:+.2f} / {a99:+.2f}"
            whole = f"{fr['p50_ms']:.2f} / {fr['p99_ms']:.2f}" if fr else "—"
            rss = (
                f"{r['rss_idle_mib']:.0f} / {r['rss_load_mib']:.0f}"
                if r.get("rss_idle_mib") is not None
                else "—"
            )
            lines.append(
                f"| {r['scenario']} | {_f(sat['calls_per_s'])} | {_f(sat['mib_per_s'], '{:.1f}')} "
                f"| {_f(sat['server_cpu_us_per_call'])} | {ttfb} | {add} | {whole} | {rss} | "
                f"{_errs(r)} |"
            )
    checks = report.get("checks", {})
    c1000 = (by.get("agent") or {}).get("concurrency_1000")
    big = checks.get("stream_100mib")
    lines += ["", "Checks:", ""]
    if c1000:
        lines.append(
            f"- agent with {c1000['concurrency']:,} calls in flight (closed loop): RSS peak "
            f"**{c1000['rss_peak_mib']:.0f} MiB**, {c1000['calls_per_s']:,.0f} calls/s, p50 "
            f"{c1000['p50_ms']:.0f} ms, errors {sum(c1000['errors'].values())}."
        )
    if big and "error_text" not in big:
        lines.append(
            f"- 100 MiB `CallStream` through the agent: {big['bytes']:,} bytes in "
            f"{big['chunks']:,} chunks, {'complete' if big['complete'] else 'INCOMPLETE'}, "
            f"{big['seconds']:.2f} s = {big['mib_per_s']:.0f} MiB/s (httpx straight from nginx: "
            f"{big['direct_mib_per_s']:.0f} MiB/s); agent RSS {big['rss_idle_mib']:.0f} MiB idle, "
            f"peak {big['rss_peak_mib']:.0f} MiB (**+{big['rss_growth_mib']:.1f} MiB**, "
            f"{big['rss_samples']} samples)."
        )
    elif big:
        lines.append(f"- 100 MiB stream: failed: {big['error_text']}")
    sink = checks.get("otlp_sink")
    if sink:
        lines.append(
            f"- OTLP sink received {sink['spans']:,} spans in {sink['trace_requests']:,} trace "
            f"exports and {sink['metric_requests']:,} metric exports over the run."
        )
    for r in report["scenarios"]:
        if "skipped" in r:
            lines.append(f"- *{r['scenario']}* not measured: {r['skipped'].splitlines()[0]}")
    if report.get("targets"):
        lines += [
            "",
            "Targets of issue 7:",
            "",
            "| target | measured | verdict |",
            "|---|---|---|",
        ]
        for t in report["targets"]:
            lines.append(f"| {t['target']} | {t['measured']} | {t['verdict']} |")
    if report.get("notes"):
        lines += [""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines)


def _verdict(ok: bool | None, miss: str = "") -> str:
    if ok is None:
        return "not measured"
    return "**met**" if ok else f"**missed** {miss}".rstrip()


def targets(report: dict[str, Any]) -> list[dict[str, str]]:
    by = {r["scenario"]: r for r in report["scenarios"] if "skipped" not in r}
    out: list[dict[str, str]] = []
    agent = by.get("agent")

    def add(target: str, measured: str, ok: bool | None, miss: str = "") -> None:
        out.append({"target": target, "measured": measured, "verdict": _verdict(ok, miss)})

    if agent:
        cps = agent["saturation"]["calls_per_s"]
        add(
            "≥ 2,000 calls/s on one core, everything on",
            f"{cps:,.0f} calls/s",
            cps >= 2000,
            f"by {2000 - cps:,.0f} ({(1 - cps / 2000) * 100:.0f}% short)",
        )
        for peer, factor in (("portkey", 2), ("litellm", 20)):
            p = by.get(peer)
            if p:
                ratio = cps / p["saturation"]["calls_per_s"]
                add(
                    f"≥ {factor}x {peer}'s calls/s",
                    f"{ratio:.1f}x ({p['saturation']['calls_per_s']:,.0f} calls/s)",
                    ratio >= factor,
                    f"({ratio / factor * 100:.0f}% of the goal)",
                )
            else:
                add(f"≥ {factor}x {peer}'s calls/s", "peer not run", None)
        cpu = agent["saturation"]["server_cpu_us_per_call"]
        add(
            "≤ 450 µs CPU per call, everything on (350 µs = Envoy)",
            f"{cpu:,.0f} µs at saturation"
            + (
                f", {agent['fixed_rate']['server_cpu_us_per_call']:,.0f} µs at 200/s"
                if agent.get("fixed_rate")
                else ""
            ),
            cpu <= 450,
            f"by {cpu - 450:,.0f} µs ({cpu / 450:.2f}x)",
        )
        a50, a99 = added(agent, by, "p50_ms"), added(agent, by, "p99_ms")
        if a50 is not None and a99 is not None:
            add(
                "+p50 ≤ 0.6 ms over direct at 200/s",
                f"{a50:+.2f} ms",
                a50 <= 0.6,
                f"by {a50 - 0.6:.2f} ms",
            )
            add(
                "+p99 ≤ 2 ms over direct at 200/s",
                f"{a99:+.2f} ms",
                a99 <= 2.0,
                f"by {a99 - 2.0:.2f} ms",
            )
        idle = agent.get("rss_idle_mib")
        if idle is not None:
            add("RSS < 80 MiB idle", f"{idle:.0f} MiB", idle < 80, f"by {idle - 80:.0f} MiB")
        c = agent.get("concurrency_1000")
        if c:
            add(
                "RSS < 150 MiB with 1,000 calls in flight",
                f"{c['rss_peak_mib']:.0f} MiB",
                c["rss_peak_mib"] < 150,
                f"by {c['rss_peak_mib'] - 150:.0f} MiB",
            )
    sse = by.get("agent-sse")
    if sse:
        a50, a99 = added(sse, by, "ttfb_p50_ms"), added(sse, by, "ttfb_p99_ms")
        if a50 is not None:
            add(
                "streaming TTFB within 1 ms of direct (p50)",
                f"{a50:+.2f} ms p50, {a99:+.2f} ms p99",
                a50 <= 1.0,
                f"by {a50 - 1.0:.2f} ms",
            )
    big = report.get("checks", {}).get("stream_100mib")
    if big and "error_text" not in big:
        flat = big["complete"] and big["rss_growth_mib"] <= 16
        add(
            "100 MiB stream passes with flat RSS (growth ≤ 16 MiB)",
            f"{'complete' if big['complete'] else 'incomplete'}, +{big['rss_growth_mib']:.1f} MiB",
            flat,
        )
    w1, w2 = by.get("agent-w1"), by.get("agent-w2")
    w1c, w2c = by.get("agent-w1-2cores"), by.get("agent-w2-2cores")
    if w1 and w2 and w1c and w2c:
        s1, s2 = w1["saturation"], w2["saturation"]
        c1, c2 = w1c["saturation"], w2c["saturation"]
        # what a second worker would give with a free core of its own: 2 x the per-call CPU
        # efficiency (the load generator needs the other core here, so it can't be run)
        projected = 2 * c1["server_cpu_us_per_call"] / c2["server_cpu_us_per_call"]
        add(
            "--workers: ≥ 1.8x per doubling of free cores",
            f"not directly measurable on 2 cores; projected {projected:.2f}x from CPU/call "
            f"({c1['server_cpu_us_per_call']:,.0f} → {c2['server_cpu_us_per_call']:,.0f} µs, "
            f"1 → 2 workers, both cores). Measured: 2 workers on core 0 "
            f"{s2['calls_per_s'] / s1['calls_per_s']:.2f}x of 1; on both cores (load generator "
            f"sharing core 1) {c2['calls_per_s'] / c1['calls_per_s']:.2f}x",
            None if projected >= 1.8 else False,
            f"(projection {projected:.2f}x)",
        )
    else:
        add("--workers: ≥ 1.8x per doubling of free cores", "`serve --workers` absent", None)
    return out


def notes_for(report: dict[str, Any]) -> list[str]:
    notes = []
    for r in report["scenarios"]:
        if "skipped" in r:
            continue
        sat = r["saturation"]
        util = sat["server_core_util"]
        if r["kind"] in ("httpx", "httpx_stream", "http_direct"):
            notes.append(
                f"{r['scenario']}: no server; calls/s is the {sat['client_processes']}-process "
                f"Python client's limit on core 1 ({sat['client_core_util'] * 100:.0f}% "
                "of a core), not nginx's."
            )
        elif util is not None and util < 0.85 and not r["scenario"].endswith("2cores"):
            notes.append(
                f"{r['scenario']}: server core only {util * 100:.0f}% busy at saturation, client "
                f"core {sat['client_core_util'] * 100:.0f}%: the load generator (or the upstream) "
                "limited calls/s; CPU µs/call is still valid."
            )
        for ph in ("saturation", "fixed_rate"):
            p = r.get(ph)
            if p and p["max_send_lag_ms"] > 5 and ph == "fixed_rate":
                notes.append(
                    f"{r['scenario']}: open-loop sender fell up to {p['max_send_lag_ms']:.1f} ms "
                    "behind schedule."
                )
    return notes


def chart(report: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib, or the `bench` extra)"
    curves = [r for r in report["scenarios"] if r.get("curve")]
    if not curves:
        return "no curve points"
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharex=True)
    for r in curves:
        xs = [p["calls_per_s"] for p in r["curve"]]
        for ax, key in zip(axes, ("p50_ms", "p99_ms"), strict=True):
            ax.plot(xs, [p[key] for p in r["curve"]], marker="o", label=r["scenario"])
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    for ax, title in zip(axes, ("p50", "p99"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("achieved calls/s (open loop, log)")
        ax.set_ylabel(f"{title} latency, ms (log)")
        ax.set_title(f"{title} latency vs throughput")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    m = report["machine"]
    fig.suptitle(
        f"kilo-agent vs direct and peers, loopback {report['upstream']['kind']} upstream, "
        f"server on 1 core ({m.get('Model name', '')}), {report['started'][:10]}",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def update_readme(table: str) -> bool:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    return True


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="measured s per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured s per phase")
    parser.add_argument("--rate", type=float, default=200.0, help="the fixed open-loop rate")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop calls in flight")
    parser.add_argument("--clients", type=int, default=2, help="closed-loop client processes")
    parser.add_argument(
        "--curve-fractions",
        default="0.25,0.5,0.75,0.9",
        help="open-loop points for the chart, as fractions of saturation",
    )
    parser.add_argument("--curve-duration", type=float, default=3.0, help="s per curve point")
    parser.add_argument("--big-concurrency", type=int, default=1000, help="0 skips the RSS check")
    parser.add_argument("--big-duration", type=float, default=3.0)
    parser.add_argument("--no-stream-100mib", action="store_true")
    parser.add_argument("--scenarios", help=f"comma list from: {', '.join(SCENARIOS)}")
    parser.add_argument("--no-peers", action="store_true", help="skip nginx-proxy/portkey/litellm")
    parser.add_argument("--upstream", choices=("nginx", "aiohttp"), default="nginx")
    parser.add_argument("--quick", action="store_true", help="smoke run, about a minute")
    parser.add_argument("--output", help="JSON path (default results/suite.json)")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.curve_duration = 1.5, 0.3, 1.0
        args.curve_fractions = "0.5"
        args.big_duration = 1.0
    args.curve_fractions = [float(x) for x in args.curve_fractions.split(",") if x.strip()]
    ws = workers_supported()
    if args.scenarios:
        names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    else:
        names = list(QUICK if args.quick else DEFAULT) + (WORKER_SCENARIOS if ws else [])
    if args.no_peers:
        names = [n for n in names if SCENARIOS.get(n, {}).get("kind") != "peer"]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    out = Path(args.output or RESULTS / ("suite_quick.json" if args.quick else "suite.json"))

    pinned = (os.cpu_count() or 1) >= 2
    if pinned:
        bench_call._pin(bench_call.LOAD_CORE)
    up = upstream_mod.start_upstream(args.upstream)
    print(f"upstream: {up.kind} {up.version} on {up.base_url}", file=sys.stderr)
    report: dict[str, Any] = {
        "benchmark": "run_all (issue 7 suite)",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python", *[Path(sys.argv[0]).name, *sys.argv[1:]]]),
        "machine": bench_call.machine(),
        "git": git_commit(),
        "upstream": {"kind": up.kind, "version": up.version, "base_url": up.base_url},
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "rate": args.rate,
            "concurrency": args.concurrency,
            "clients": args.clients,
            "curve_fractions": args.curve_fractions,
            "curve_duration": args.curve_duration,
            "scenarios": names,
            "quick": args.quick,
            "workers_flag": ws,
        },
        "pinning": {"server_core": 0 if pinned else None, "load_core": 1 if pinned else None},
        "scenarios": [],
        "checks": {},
    }
    ctx: dict[str, Any] = {"args": args, "upstream": up, "workers_supported": ws}
    started = time.monotonic()
    mp = multiprocessing.get_context("spawn")
    try:
        ctx["sink"] = CountingSink()
        with cf.ProcessPoolExecutor(max_workers=max(2, args.clients), mp_context=mp) as pool:
            ctx["pool"] = pool
            list(pool.map(loadgen.warm, range(max(2, args.clients))))
            for name in names:
                print(f"scenario {name} ...", file=sys.stderr)
                report["scenarios"].append(run_scenario(name, ctx))
        if not args.no_stream_100mib:
            print("check: 100 MiB CallStream ...", file=sys.stderr)
            try:
                report["checks"]["stream_100mib"] = stream_big(ctx)
            except Exception as exc:
                report["checks"]["stream_100mib"] = {"error_text": repr(exc)}
        report["checks"]["otlp_sink"] = ctx["sink"].counts()
    finally:
        with contextlib.suppress(Exception):
            ctx["sink"].stop()
        if ctx.get("redis"):
            ctx["redis"].stop()
            shutil.rmtree(ctx["redis_dir"], ignore_errors=True)
        up.stop()
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["targets"] = targets(report)
    report["notes"] = notes_for(report)
    png = out.parent / (
        "latency_vs_throughput_quick.png" if args.quick else "latency_vs_throughput.png"
    )
    problem = chart(report, png)
    report["chart"] = os.path.relpath(png, HERE) if problem is None else f"not drawn: {problem}"
    table = markdown(report)
    report["markdown"] = table
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(table + "\n")
    full_run = not args.quick and not args.no_readme and not args.scenarios
    if full_run and not update_readme(table):
        print(f"README.md has no {BEGIN} block; not updated", file=sys.stderr)
    print(table)
    print(f"\n(JSON: {out}; chart: {report['chart']}; {report['elapsed_s']} s)", file=sys.stderr)
    bad = any(
        "skipped" not in r
        and (r["saturation"]["errors"] or (r.get("fixed_rate") or {}).get("errors"))
        for r in report["scenarios"]
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
