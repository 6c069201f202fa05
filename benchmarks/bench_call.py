"""What one ``Call`` through kilo-agent costs, next to calling the upstream directly.

One run, one upstream, side by side (see benchmarks/README.md):

* ``direct``        the app calls the upstream itself with ``httpx.AsyncClient`` (the baseline);
* ``agent``         ``kilo.agent.v1.IntegrationAgent/Call`` through ``python -m agent serve``;
* ``proto-aiohttp`` the same ``Call`` through benchmarks/proto_aiohttp_hop.py (grpc.aio +
                    aiohttp, uvloop): the reference figure for a lean Python hop;
* variants: ``agent-pool8`` (``transport: {max_connections: 8, max_keepalive_connections: 8}``),
  ``agent-pool32``, ``agent-pool4``, ``agent-h1only`` (``transport.http2: false``), and
  ``proto-httpx`` / ``proto-httpx-aiohttp`` (the prototype hop on httpx, or on httpx's API over
  the ``httpx-aiohttp`` transport) to split the agent's cost into HTTP client and own code.

The server under test is pinned to core 0; this process, the load generator processes and the
upstream to core 1. Per scenario: calls/s at saturation (closed loop, fixed concurrency),
p50/p90/p99 at a fixed arrival rate (open loop), latency added over direct, server CPU per call
(psutil), server RSS, client CPU, and errors. Markdown on stdout, JSON in
benchmarks/results/bench_call.json.

    .venv/bin/python benchmarks/bench_call.py            # ~1.5 minutes
    .venv/bin/python benchmarks/bench_call.py --quick    # a few seconds, smoke test
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import upstream as upstream_mod  # noqa: E402

INTEGRATION = "bench"
TOKEN = "sk-bench-not-a-secret"  # a dummy; the upstream never checks it
SERVER_CORE, LOAD_CORE = 0, 1

SCENARIOS: dict[str, dict[str, Any]] = {
    "direct": {
        "kind": "httpx",
        "server": None,
        "what": "app -> upstream, httpx.AsyncClient defaults, HTTP/1.1 keep-alive",
    },
    "agent": {
        "kind": "grpc",
        "server": "agent",
        "transport": None,
        "what": "app -> kilo-agent Call -> upstream (config defaults: pool 64/32 keep-alive)",
    },
    "agent-pool32": {
        "kind": "grpc",
        "server": "agent",
        "transport": {"max_connections": 32, "max_keepalive_connections": 32},
        "what": "agent, transport max_connections=32 max_keepalive_connections=32",
    },
    "agent-pool8": {
        "kind": "grpc",
        "server": "agent",
        "transport": {"max_connections": 8, "max_keepalive_connections": 8},
        "what": "agent, transport max_connections=8 max_keepalive_connections=8",
    },
    "agent-pool4": {
        "kind": "grpc",
        "server": "agent",
        "transport": {"max_connections": 4, "max_keepalive_connections": 4},
        "what": "agent, transport max_connections=4 max_keepalive_connections=4",
    },
    "agent-h1only": {
        "kind": "grpc",
        "server": "agent",
        "transport": {"http2": False},
        "what": "agent, transport http2=false (HTTP/1.1 only client)",
    },
    "proto-aiohttp": {
        "kind": "grpc",
        "server": "proto",
        "client": "aiohttp",
        "what": "app -> prototype grpc.aio + aiohttp hop -> upstream (uvloop)",
    },
    "proto-httpx": {
        "kind": "grpc",
        "server": "proto",
        "client": "httpx",
        "what": "the same prototype hop with httpx.AsyncClient (pool 64/32, as the agent)",
    },
    "proto-httpx-aiohttp": {
        "kind": "grpc",
        "server": "proto",
        "client": "httpx-aiohttp",
        "what": "the prototype hop with httpx API on httpx_aiohttp.AiohttpTransport",
    },
}
DEFAULT_SCENARIOS = ["direct", "agent", "proto-aiohttp", "proto-httpx", "agent-pool8"]
QUICK_SCENARIOS = ["direct", "agent", "proto-aiohttp"]


# -- processes under test --------------------------------------------------------------------


def _pin(core: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {core})


def _pin_server() -> None:  # preexec_fn of the server under test
    _pin(SERVER_CORE)
    upstream_mod.die_with_parent()


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    address: str
    workdir: str
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def agent_config(base_url: str, transport: dict[str, Any] | None) -> str:
    lines = [
        'listen: {grpc: "127.0.0.1:50051"}',
        "integrations:",
        f"  {INTEGRATION}:",
        f'    base_url: "{base_url}"',
        f'    auth: {{type: bearer, token: "{TOKEN}"}}',
        "    timeout: 10s",
    ]
    if transport:
        body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in transport.items())
        lines.append(f"    transport: {{{body}}}")
    return "\n".join(lines) + "\n"


def chat_call_spec(address: str) -> dict[str, Any]:
    """The load generator's spec for the canned chat completion through a gRPC server."""
    return {
        "kind": "grpc",
        "target": address,
        "integration": INTEGRATION,
        "path": "/chat/completions",
        "body": upstream_mod.chat_request_body(),
        "expect_len": upstream_mod.BODY_SIZE,
    }


def start_server(
    kind: str,
    base_url: str,
    transport: dict[str, Any] | None,
    client: str = "aiohttp",
    env_overrides: dict[str, str] | None = None,
) -> Server:
    workdir = tempfile.mkdtemp(prefix=f"kilo-bench-{kind}-")
    port = upstream_mod.free_port()
    address = f"127.0.0.1:{port}"
    log = Path(workdir, "server.log")
    env = dict(os.environ, PYTHONUNBUFFERED="0", OTEL_SDK_DISABLED="true")
    env.update(env_overrides or {})
    extra: dict[str, Any] = {}
    if kind == "agent":
        config = Path(workdir, "agent.yaml")
        config.write_text(agent_config(base_url, transport))
        extra["config"] = config.read_text()
        argv = [
            sys.executable,
            "-m",
            "agent",
            "serve",
            "--config",
            str(config),
            "--listen",
            address,
        ]
    else:
        argv = [
            sys.executable,
            str(HERE / "proto_aiohttp_hop.py"),
            "--listen",
            address,
            "--base-url",
            base_url,
            "--token",
            TOKEN,
            "--integration",
            INTEGRATION,
            "--client",
            client,
        ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_pin_server,
        )
    server = Server(kind, proc, address, workdir, log, extra)
    try:
        _wait_ready(server)
    except Exception:
        server.stop()
        raise
    return server


def _wait_ready(server: Server, limit: float = 30.0) -> None:
    """Ready = one real Call answered 200 (also proves the path works end to end)."""
    import grpc

    from agent.api.kilo.agent.v1 import agent_pb2 as pb
    from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc

    request = pb.CallRequest(
        integration=INTEGRATION,
        method="POST",
        path="/chat/completions",
        headers=[pb.Header(name="content-type", value="application/json")],
        body=upstream_mod.chat_request_body(),
    )
    deadline = time.monotonic() + limit
    last = ""
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.IntegrationAgentStub(channel)
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
                )
            try:
                response = stub.Call(request, timeout=2)
                if response.status == 200:
                    return
                last = f"status {response.status}"
            except grpc.RpcError as exc:
                last = f"{exc.code().name}: {exc.details()}"
            time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready after {limit}s ({last}):\n{server.log_tail()}")


# -- phases ------------------------------------------------------------------------------------


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _rss(pid: int) -> int:
    """RSS of the process and its children (workers of a multi-process server), in bytes."""
    return sum(_rss_one(p) for p in _tree(pid))


def _rss_one(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def _tree(pid: int) -> list[int]:
    """The process and its descendants (CPU and RSS of a server count them all)."""
    try:
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def _upstream_conns(pid: int, port: int) -> int:
    total = 0
    for p in _tree(pid):
        try:
            conns = psutil.Process(p).net_connections(kind="tcp")
        except psutil.Error:
            return -1
        total += sum(
            1 for c in conns if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED"
        )
    return total


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def run_phase(
    pool: cf.ProcessPoolExecutor,
    *,
    mode: str,
    workers: int,
    spec: dict[str, Any],
    args: argparse.Namespace,
    server_pid: int | None,
    upstream_pids: list[int],
    upstream_port: int,
) -> dict[str, Any]:
    start_at = time.monotonic() + 0.6
    t_begin = start_at + args.warmup
    t_end = t_begin + args.duration
    specs = []
    for i in range(workers):
        s = dict(spec, mode=mode, start_at=start_at, warmup=args.warmup, duration=args.duration)
        s["drain"] = 5.0
        s["call_timeout"] = 10.0
        if mode == "closed":
            s["concurrency"] = _split(args.concurrency, workers)[i]
            s["max_calls"] = int(20_000 * (args.warmup + args.duration))  # bound: 20k calls/s
        else:
            s["rate"] = args.rate / workers
            s["max_calls"] = int(args.rate / workers * (args.warmup + args.duration)) + 1
            s["max_inflight"] = 2_000
        specs.append(s)
    futures = [pool.submit(loadgen.run_worker, s) for s in specs]
    time.sleep(max(0.0, t_begin - time.monotonic()))
    server_pids = _tree(server_pid) if server_pid else []
    by_pid0 = {p: _cpu([p]) for p in server_pids}
    s_cpu0 = _cpu(server_pids) if server_pid else 0.0
    u_cpu0 = _cpu(upstream_pids)
    rss_peak = 0
    conns = -1
    while time.monotonic() < t_end:
        if server_pid:
            rss_peak = max(rss_peak, _rss(server_pid))
        time.sleep(min(0.25, max(0.0, t_end - time.monotonic())))
    s_cpu1 = _cpu(server_pids) if server_pid else 0.0
    by_pid = {str(p): round(_cpu([p]) - c0, 3) for p, c0 in by_pid0.items()}
    u_cpu1 = _cpu(upstream_pids)
    if server_pid:
        conns = _upstream_conns(server_pid, upstream_port)
        rss_peak = max(rss_peak, _rss(server_pid))
    results = [f.result(timeout=args.duration + args.warmup + 30) for f in futures]
    latencies = sorted(x for r in results for x in r["latencies"])
    ttfbs = sorted(x for r in results for x in r.get("ttfbs", ()))
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    done = sum(r["done_in_window"] for r in results)
    ok = sum(r["ok_in_window"] for r in results)
    client_cpu = sum(r["client_cpu_s"] for r in results)
    server_cpu = s_cpu1 - s_cpu0
    ms = 1000.0
    return {
        "mode": mode,
        "client_processes": workers,
        "concurrency": args.concurrency if mode == "closed" else None,
        "target_rate": args.rate if mode == "open" else None,
        "duration_s": args.duration,
        "calls_in_window": done,
        "ok_in_window": ok,
        "calls_per_s": ok / args.duration,
        "latency_samples": len(latencies),
        "p50_ms": percentile(latencies, 50) * ms,
        "p90_ms": percentile(latencies, 90) * ms,
        "p99_ms": percentile(latencies, 99) * ms,
        "max_ms": (latencies[-1] * ms) if latencies else 0.0,
        "mean_ms": (sum(latencies) / len(latencies) * ms) if latencies else 0.0,
        "ttfb_p50_ms": percentile(ttfbs, 50) * ms if ttfbs else None,
        "ttfb_p90_ms": percentile(ttfbs, 90) * ms if ttfbs else None,
        "ttfb_p99_ms": percentile(ttfbs, 99) * ms if ttfbs else None,
        "mib_per_s": sum(r.get("bytes_in_window", 0) for r in results) / args.duration / 2**20,
        "errors": errors,
        "dropped": sum(r["dropped"] for r in results),
        "max_send_lag_ms": max(r["max_send_lag_ms"] for r in results),
        "server_cpu_s": server_cpu if server_pid else None,
        "server_cpu_s_by_pid": by_pid if len(by_pid) > 1 else None,
        "server_core_util": (server_cpu / args.duration) if server_pid else None,
        "server_cpu_us_per_call": (server_cpu / done * 1e6) if server_pid and done else None,
        "server_rss_peak_mib": rss_peak / 2**20 if server_pid else None,
        "server_upstream_conns": conns if server_pid else None,
        "client_cpu_s": client_cpu,
        "client_core_util": client_cpu / args.duration,
        "client_cpu_us_per_call": client_cpu / done * 1e6 if done else None,
        "upstream_cpu_us_per_call": (u_cpu1 - u_cpu0) / done * 1e6 if done else None,
    }


def run_scenario(
    name: str,
    pool: cf.ProcessPoolExecutor,
    up: upstream_mod.Upstream,
    args: argparse.Namespace,
) -> dict[str, Any]:
    sc = SCENARIOS[name]
    body = upstream_mod.chat_request_body()
    result: dict[str, Any] = {"scenario": name, "what": sc["what"]}
    server: Server | None = None
    if sc["server"] is None:
        port = up.h2c_port if sc.get("http2") else up.port
        if port is None:
            return dict(result, skipped="needs nginx (h2c port)")
        spec = {
            "kind": "httpx",
            "target": f"http://127.0.0.1:{port}",
            "path": upstream_mod.CHAT_PATH,
            "http2": bool(sc.get("http2")),
        }
    else:
        try:
            server = start_server(
                sc["server"], up.base_url, sc.get("transport"), sc.get("client", "aiohttp")
            )
        except Exception as exc:
            return dict(result, skipped=f"server did not start: {exc}")
        spec = {
            "kind": "grpc",
            "target": server.address,
            "integration": INTEGRATION,
            "path": "/chat/completions",
        }
        result["server_pid"] = server.pid
        result["server_affinity"] = sorted(psutil.Process(server.pid).cpu_affinity())
        if server.extra.get("config"):
            result["agent_config"] = server.extra["config"]
    spec.update(body=body, expect_len=upstream_mod.BODY_SIZE)
    try:
        if server:
            time.sleep(0.3)
            result["server_rss_idle_mib"] = _rss(server.pid) / 2**20
        common = {
            "spec": spec,
            "args": args,
            "server_pid": server.pid if server else None,
            "upstream_pids": up.pids,
            "upstream_port": up.port,
        }
        result["saturation"] = run_phase(pool, mode="closed", workers=args.clients, **common)
        result["fixed_rate"] = run_phase(pool, mode="open", workers=args.open_clients, **common)
    finally:
        if server:
            rc = server.stop()
            result["server_exit_code"] = rc
            shutil.rmtree(server.workdir, ignore_errors=True)
    return result


def merge_repeats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario's repeats: the median of every figure, errors summed, each run kept."""
    ok = [r for r in runs if "skipped" not in r]
    if not ok:
        return runs[0]
    if len(ok) == 1:
        return ok[0]
    merged = dict(ok[0])
    for phase in ("saturation", "fixed_rate"):
        m = dict(ok[0][phase])
        for key, value in m.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                m[key] = statistics.median(r[phase][key] for r in ok if r[phase][key] is not None)
        errors: dict[str, int] = {}
        for r in ok:
            for k, v in r[phase]["errors"].items():
                errors[k] = errors.get(k, 0) + v
        m["errors"] = errors
        m["dropped"] = sum(r[phase]["dropped"] for r in ok)
        merged[phase] = m
    merged["server_rss_idle_mib"] = (
        statistics.median(r["server_rss_idle_mib"] for r in ok)
        if ok[0].get("server_rss_idle_mib") is not None
        else None
    )
    merged["repeats"] = [
        {
            "calls_per_s": r["saturation"]["calls_per_s"],
            "server_cpu_us_per_call": r["saturation"]["server_cpu_us_per_call"],
            "p50_ms": r["fixed_rate"]["p50_ms"],
            "p99_ms": r["fixed_rate"]["p99_ms"],
        }
        for r in ok
    ]
    return merged


# -- report ------------------------------------------------------------------------------------


def _f(value: Any, fmt: str = "{:,.0f}") -> str:
    return "—" if value is None else fmt.format(value)


def _errors(r: dict[str, Any]) -> str:
    errs: dict[str, int] = {}
    for phase in ("saturation", "fixed_rate"):
        for k, v in r[phase]["errors"].items():
            errs[k] = errs.get(k, 0) + v
        if r[phase]["dropped"]:
            errs["dropped"] = errs.get("dropped", 0) + r[phase]["dropped"]
    return ", ".join(f"{k}={v}" for k, v in sorted(errs.items())) or "0"


def markdown(report: dict[str, Any]) -> str:
    rows = [r for r in report["scenarios"] if "skipped" not in r]
    direct = next((r for r in rows if r["scenario"] == "direct"), None)
    s = report["settings"]
    out = [
        f"Upstream: **{report['upstream']['kind']}** ({report['upstream']['version']}), 1 KiB "
        f"chat.completion on POST {upstream_mod.CHAT_PATH}, keep-alive. Server under test pinned "
        f"to core {SERVER_CORE}; load generator ({s['clients']} closed-loop client process(es), "
        f"{s['open_clients']} open-loop), upstream and harness pinned to core {LOAD_CORE}. "
        f"Saturation: closed loop, concurrency {s['concurrency']}, {s['duration']} s "
        f"(+{s['warmup']} s warm-up). Latency: open loop at {s['rate']:g} calls/s, "
        f"{s['duration']} s."
        + (f" Figures are medians of {s['repeat']} interleaved runs." if s["repeat"] > 1 else ""),
        "",
        "| scenario | calls/s @sat | server core busy @sat | server CPU µs/call @sat | "
        "client CPU µs/call @sat | p50 ms | p90 ms | p99 ms | +p50 ms vs direct | "
        "+p99 ms vs direct | server CPU µs/call @rate | RSS idle / peak MiB | upstream conns | "
        "errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        sat, fr = r["saturation"], r["fixed_rate"]
        add50 = add99 = None
        if direct and r is not direct:
            add50 = fr["p50_ms"] - direct["fixed_rate"]["p50_ms"]
            add99 = fr["p99_ms"] - direct["fixed_rate"]["p99_ms"]
        rss = (
            f"{r['server_rss_idle_mib']:.0f} / {sat['server_rss_peak_mib']:.0f}"
            if r.get("server_rss_idle_mib") is not None
            else "—"
        )
        out.append(
            "| "
            + " | ".join(
                [
                    r["scenario"],
                    _f(sat["calls_per_s"]),
                    _f(
                        sat["server_core_util"] * 100 if sat["server_core_util"] else None,
                        "{:.0f}%",
                    ),
                    _f(sat["server_cpu_us_per_call"]),
                    _f(sat["client_cpu_us_per_call"]),
                    _f(fr["p50_ms"], "{:.2f}"),
                    _f(fr["p90_ms"], "{:.2f}"),
                    _f(fr["p99_ms"], "{:.2f}"),
                    _f(add50, "{:+.2f}"),
                    _f(add99, "{:+.2f}"),
                    _f(fr["server_cpu_us_per_call"]),
                    rss,
                    _f(sat["server_upstream_conns"], "{:.0f}"),
                    _errors(r),
                ]
            )
            + " |"
        )
    for r in report["scenarios"]:
        if "skipped" in r:
            out.append(f"\n*{r['scenario']}* skipped: {r['skipped'].splitlines()[0]}")
    cmp = report.get("comparison")
    if cmp:
        out += ["", cmp["text"]]
    notes = report.get("notes") or []
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out)


def compare(report: dict[str, Any]) -> dict[str, Any] | None:
    by = {r["scenario"]: r for r in report["scenarios"] if "skipped" not in r}
    if "agent" not in by or "proto-aiohttp" not in by:
        return None
    a = by["agent"]["saturation"]["server_cpu_us_per_call"]
    p = by["proto-aiohttp"]["saturation"]["server_cpu_us_per_call"]
    if not a or not p:
        return None
    ratio = a / p
    verdict = "within" if ratio <= 1.5 else "NOT within"
    text = (
        f"Agent vs aiohttp prototype, CPU per call at saturation: {a:,.0f} µs vs {p:,.0f} µs = "
        f"{ratio:.2f}x ({verdict} the 1.5x asked by issue 3); throughput "
        f"{by['agent']['saturation']['calls_per_s']:,.0f} vs "
        f"{by['proto-aiohttp']['saturation']['calls_per_s']:,.0f} calls/s."
    )
    best = min(
        (r for n, r in by.items() if n.startswith("agent")),
        key=lambda r: r["saturation"]["server_cpu_us_per_call"] or 1e12,
    )
    if best is not by["agent"]:
        b = best["saturation"]["server_cpu_us_per_call"]
        text += (
            f" Best agent variant: {best['scenario']} at {b:,.0f} µs/call = {b / p:.2f}x the "
            "prototype."
        )
    return {"agent_us": a, "proto_us": p, "ratio": ratio, "within_1_5x": ratio <= 1.5, "text": text}


def notes_for(report: dict[str, Any]) -> list[str]:
    notes = []
    for r in report["scenarios"]:
        if "skipped" in r:
            continue
        sat = r["saturation"]
        if r["scenario"].startswith("direct"):
            notes.append(
                f"{r['scenario']}: calls/s is one Python httpx client's limit on core {LOAD_CORE} "
                f"(client core {sat['client_core_util'] * 100:.0f}% busy), not nginx's."
            )
        elif sat["server_core_util"] is not None and sat["server_core_util"] < 0.85:
            notes.append(
                f"{r['scenario']}: server core only {sat['server_core_util'] * 100:.0f}% busy at "
                f"saturation (client core {sat['client_core_util'] * 100:.0f}%): the load "
                "generator, not the server, limited calls/s; CPU µs/call is still valid."
            )
        for phase in ("saturation", "fixed_rate"):
            if r[phase]["errors"] or r[phase]["dropped"]:
                notes.append(f"{r['scenario']} {phase}: ERRORS {r[phase]['errors']}")
        if r["fixed_rate"]["max_send_lag_ms"] > 2:
            notes.append(
                f"{r['scenario']}: open-loop sender fell up to "
                f"{r['fixed_rate']['max_send_lag_ms']:.1f} ms behind schedule."
            )
    return notes


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "Hypervisor vendor", "CPU(s)", "L2 cache"):
                info[key.strip()] = value.strip()
    except OSError:
        pass
    versions = {}
    for dist in ("grpcio", "protobuf", "httpx", "httpcore", "h2", "aiohttp", "uvloop", "sniffio"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    info["versions"] = versions
    return info


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per phase")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop calls/s")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop calls in flight")
    parser.add_argument(
        "--clients", type=int, default=2, help="closed-loop client processes (all on core 1)"
    )
    parser.add_argument("--open-clients", type=int, default=1, help="open-loop client processes")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma list from: {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the scenario list N times; report medians"
    )
    parser.add_argument("--upstream", choices=("nginx", "aiohttp"), default="nginx")
    parser.add_argument("--quick", action="store_true", help="a few seconds in all (smoke test)")
    parser.add_argument("--output", default=str(HERE / "results" / "bench_call.json"))
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup = min(args.duration, 1.5), min(args.warmup, 0.3)
        if args.scenarios == ",".join(DEFAULT_SCENARIOS):
            args.scenarios = ",".join(QUICK_SCENARIOS)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    if args.duration <= 0 or args.rate <= 0 or args.concurrency < 1 or args.clients < 1:
        parser.error("--duration, --rate, --concurrency and --clients must be positive")

    pinned = (os.cpu_count() or 1) >= 2
    if pinned:
        _pin(LOAD_CORE)  # inherited by the upstream and the load generator processes
    else:
        print("only one core: nothing is pinned", file=sys.stderr)
    up = upstream_mod.start_upstream(args.upstream)
    print(f"upstream: {up.kind} {up.version} on {up.base_url}", file=sys.stderr)
    report: dict[str, Any] = {
        "benchmark": "bench_call",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "upstream": {"kind": up.kind, "version": up.version, "base_url": up.base_url},
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "rate": args.rate,
            "concurrency": args.concurrency,
            "clients": args.clients,
            "open_clients": args.open_clients,
            "repeat": args.repeat,
            "scenarios": names,
            "quick": args.quick,
        },
        "pinning": {
            "server_under_test_core": SERVER_CORE if pinned else None,
            "load_generator_upstream_harness_core": LOAD_CORE if pinned else None,
        },
        "scenarios": [],
    }
    workers = max(args.clients, args.open_clients)
    ctx = multiprocessing.get_context("spawn")
    started = time.monotonic()
    try:
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            list(pool.map(loadgen.warm, range(workers)))
            runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
            for rep in range(args.repeat):
                for name in names:
                    print(f"scenario {name} (run {rep + 1}/{args.repeat}) ...", file=sys.stderr)
                    runs[name].append(run_scenario(name, pool, up, args))
            report["scenarios"] = [merge_repeats(runs[n]) for n in names]
    finally:
        up.stop()
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["comparison"] = compare(report)
    report["notes"] = notes_for(report)
    table = markdown(report)
    report["markdown"] = table
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table)
    print(f"\n(JSON: {out}; {report['elapsed_s']} s)", file=sys.stderr)
    bad = any(
        "skipped" not in r and (r["saturation"]["errors"] or r["fixed_rate"]["errors"])
        for r in report["scenarios"]
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
