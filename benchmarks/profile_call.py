"""Profile the agent's hot path under load with py-spy, and name the top costs.

Starts the same private upstream and server as bench_call.py (server pinned to core 0, load on
core 1), drives ``Call`` in a closed loop, records the server with ``py-spy record`` (raw
collapsed stacks, optionally ``--native`` to see into grpc's Cython/C, uvloop and protobuf), and
summarises: share of samples by component (the deepest frame of the stack that belongs to a
known component), top functions by self samples, and the inclusive share of hot-path functions.

    .venv/bin/pip install py-spy
    .venv/bin/python benchmarks/profile_call.py                   # agent, Python frames
    .venv/bin/python benchmarks/profile_call.py --native          # with C frames
    .venv/bin/python benchmarks/profile_call.py --server proto    # the aiohttp prototype
    .venv/bin/python benchmarks/profile_call.py --transport '{"max_connections": 8}'

py-spy pauses the process for each sample (the default, for consistent stacks), so throughput
while profiling is lower than in bench_call.py; shares of samples are what to read.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import json
import multiprocessing
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_call  # noqa: E402
import loadgen  # noqa: E402
import upstream as upstream_mod  # noqa: E402

# (component, pattern on one frame); the deepest frame that matches any pattern owns the sample.
COMPONENTS: list[tuple[str, re.Pattern[str]]] = [
    ("httpcore pool (connection_pool.py)", re.compile(r"httpcore/_async/connection_pool\.py")),
    ("httpcore (connection, http11, sync primitives)", re.compile(r"httpcore/")),
    ("h11 (HTTP/1.1 parser)", re.compile(r"h11/")),
    ("h2 / hpack", re.compile(r"(^|[ (/])(h2|hpack)/")),
    ("httpx (client, models, headers, URL)", re.compile(r"httpx/")),
    ("anyio / sniffio", re.compile(r"(anyio|sniffio)/")),
    ("aiohttp / yarl / multidict", re.compile(r"(aiohttp|yarl|multidict)/")),
    ("agent.telemetry", re.compile(r"agent/telemetry/")),
    ("agent.engine", re.compile(r"agent/engine/")),
    ("agent.server", re.compile(r"agent/server/")),
    ("agent (other)", re.compile(r"agent/(credentials|transport|events|errors|policies)")),
    ("protobuf", re.compile(r"google/protobuf|_message\.|upb|protobuf")),
    ("grpc (cygrpc / C-core)", re.compile(r"grpc/|cygrpc|grpc_|libgrpc")),
    ("logging", re.compile(r"logging/")),
    ("opentelemetry", re.compile(r"opentelemetry/")),
    ("asyncio (Python + C)", re.compile(r"asyncio/(?!runners)|_asynciomodule\.c")),
    ("uvloop / libuv", re.compile(r"uvloop|loop\.c|\(uv_|uv__|libuv")),
    (
        "main thread in C below the last Python frame (uvloop, cygrpc, protobuf, syscalls)",
        re.compile(r"^Runner\.run \(asyncio/runners\.py"),
    ),
]
KEY_FUNCTIONS = [
    "IntegrationAgentServicer.Call",
    "IntegrationAgentServicer._admit",
    "to_outbound",
    "to_headers",
    "to_meta",
    "Engine.call",
    "Engine._prepare",
    "Engine._exchange",
    "StaticCredentials.apply",
    "AsyncClient.build_request",
    "AsyncClient.send",
    "AsyncConnectionPool.handle_async_request",
    "AsyncConnectionPool._assign_requests_to_connections",
    "AsyncHTTP11Connection.handle_async_request",
    "AsyncHTTP11Connection.has_expired",
    "is_socket_readable",
    "current_async_library",
    "current_task",
    "CancelScope.__enter__",
    "CancelScope.__exit__",
    "fail_at",
    "Lock.acquire",
    "AsyncShieldCancellation.__init__",
    "AnyIOStream.read",
    "AnyIOStream.write",
    "Response.aread",
    "strip_hop_by_hop",
    "AiohttpTransport.handle_async_request",
    "ClientSession._request",
    "Engine.stream",
    "Headers.multi_items",
]
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<where>[^()]*)\)$")


def parse_raw(text: str) -> list[tuple[list[str], int]]:
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


_IDLE_LEAF = re.compile(r"^(epoll_wait|epoll_pwait|poll|select) \(")


def is_idle(frames: list[str]) -> bool:
    """A thread waiting, not burning CPU: grpc's poller thread parked in epoll_wait.

    py-spy reports that thread as active; with --native its leaf is ``epoll_wait``, without it
    the deepest Python frame is ``Thread.run`` (the poller's target is Cython). A ``--native``
    profile showed the poller thread busy in under 1% of samples, so dropping it is safe.
    """
    leaf = frames[-1]
    return bool(_IDLE_LEAF.match(leaf)) or leaf.startswith("Thread.run (threading.py")


def summarise(stacks: list[tuple[list[str], int]]) -> dict[str, Any]:
    all_samples = sum(c for _, c in stacks)
    stacks = [(f, c) for f, c in stacks if not is_idle(f)]
    total = sum(c for _, c in stacks)
    by_component: collections.Counter[str] = collections.Counter()
    comp_incl: collections.Counter[str] = collections.Counter()
    self_py: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        owner = "other (interpreter, libc, unattributed)"
        for frame in reversed(frames):
            hit = next((name for name, pat in COMPONENTS if pat.search(frame)), None)
            if hit:
                owner = hit
                break
        by_component[owner] += count
        present = {name for frame in frames for name, pat in COMPONENTS if pat.search(frame)}
        for name in present:
            comp_incl[name] += count
        comp_incl[COMPONENTS[-1][0]] = 0  # Runner.run is in every main-thread stack
        leaf_py = next((f for f in reversed(frames) if ".py:" in f), None)
        if leaf_py:
            m = _FRAME.match(leaf_py)
            func = m.group("func") if m else leaf_py
            where = m.group("where").rsplit(":", 1)[0] if m else ""
            self_py[f"{func} ({where})"] += count
        seen = set()
        for frame in frames:
            m = _FRAME.match(frame)
            func = m.group("func") if m else frame
            if func not in seen:
                seen.add(func)
                inclusive[func] += count

    def pct(n: int) -> float:
        return round(100.0 * n / total, 1) if total else 0.0

    return {
        "samples": total,
        "idle_samples_dropped": all_samples - total,
        "by_component": [
            {"component": k, "samples": v, "pct": pct(v), "inclusive_pct": pct(comp_incl[k])}
            for k, v in by_component.most_common()
        ],
        "top_self": [
            {"function": k, "samples": v, "pct": pct(v)} for k, v in self_py.most_common(25)
        ],
        "key_inclusive": [
            {"function": k, "samples": inclusive.get(k, 0), "pct": pct(inclusive.get(k, 0))}
            for k in KEY_FUNCTIONS
            if inclusive.get(k, 0)
        ],
    }


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    out = [
        f"py-spy {meta['py_spy_mode']} profile of `{meta['server']}` under a closed loop of "
        f"{meta['concurrency']} calls in flight for {meta['duration']} s "
        f"({summary['samples']} busy samples at {meta['rate']} Hz, "
        f"{summary['idle_samples_dropped']} idle ones of grpc's poller thread in epoll_wait "
        f"dropped; {meta['calls_per_s']:.0f} calls/s "
        f"and {meta['server_cpu_us_per_call']:.0f} µs CPU/call while sampled; transport "
        f"{meta['transport'] or 'defaults'}).",
        "",
        "| component | % samples, self (deepest frame owning the sample) | % inclusive |",
        "|---|---:|---:|",
    ]
    out += [
        f"| {r['component']} | {r['pct']:.1f} | {r.get('inclusive_pct') or '—'} |"
        for r in summary["by_component"]
    ]
    out += ["", "| top functions by self samples (deepest Python frame) | % |", "|---|---:|"]
    out += [f"| `{r['function']}` | {r['pct']:.1f} |" for r in summary["top_self"][:20]]
    out += ["", "| hot-path function, inclusive | % |", "|---|---:|"]
    out += [f"| `{r['function']}` | {r['pct']:.1f} |" for r in summary["key_inclusive"]]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--server",
        choices=("agent", "agent-full", "proto"),
        default="agent",
        help="agent = minimal config, telemetry off; agent-full = run_all.py's everything-on "
        "agent (limits, breaker, retry, OTLP to a local sink, audit file)",
    )
    parser.add_argument("--transport", default="", help="agent transport block as JSON")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds sampled")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames)")
    parser.add_argument(
        "--gil", action="store_true", help="py-spy --gil: only the thread holding the GIL"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for --server agent (repeatable), e.g. OTEL_SDK_DISABLED=false",
    )
    parser.add_argument("--name", default="", help="output name (default from the options)")
    parser.add_argument(
        "--resummarise", action="store_true", help="only re-read results/<name>.collapsed.txt"
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        parser.error("py-spy is missing: .venv/bin/pip install py-spy")
    transport = json.loads(args.transport) if args.transport else None
    name = args.name or "profile_" + args.server + ("_native" if args.native else "")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    raw = results / f"{name}.collapsed.txt"
    if args.resummarise:
        saved = json.loads((results / f"{name}.json").read_text())
        return _write(results, name, summarise(parse_raw(raw.read_text())), saved["meta"])

    bench_call._pin(bench_call.LOAD_CORE)
    up = upstream_mod.start_upstream()
    sink = None
    if args.server == "agent-full":
        import run_all

        sink = run_all.CountingSink()
        server = run_all.start_agent("full", up.base_url, sink.endpoint)
    else:
        overrides = dict(item.split("=", 1) for item in args.env)
        server = bench_call.start_server(
            args.server, up.base_url, transport, env_overrides=overrides
        )
    spy_cmd = [py_spy, "record", "--pid", str(server.pid), "--duration", str(int(args.duration))]
    spy_cmd += ["--rate", str(args.rate), "--format", "raw", "--output", str(raw)]
    if args.native:
        spy_cmd.append("--native")
    if args.gil:
        spy_cmd.append("--gil")
    spy: dict[str, Any] = {}

    def record() -> None:
        spy["proc"] = subprocess.run(spy_cmd, capture_output=True, text=True, check=False)

    phase_args = argparse.Namespace(
        duration=args.duration + 1.0,
        warmup=args.warmup,
        concurrency=args.concurrency,
        rate=200.0,
    )
    spec = bench_call.chat_call_spec(server.address)
    try:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=args.clients, mp_context=ctx) as pool:
            list(pool.map(loadgen.warm, range(args.clients)))
            timer = threading.Timer(0.6 + args.warmup + 0.5, record)
            timer.start()
            phase = bench_call.run_phase(
                pool,
                mode="closed",
                workers=args.clients,
                spec=spec,
                args=phase_args,
                server_pid=server.pid,
                upstream_pids=up.pids,
                upstream_port=up.port,
            )
            timer.join()
            deadline = time.monotonic() + args.duration + 30
            while "proc" not in spy and time.monotonic() < deadline:
                time.sleep(0.2)
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
        if sink is not None:
            sink.stop()
        up.stop()
    proc = spy.get("proc")
    if proc is None or proc.returncode != 0 or not raw.exists():
        print(f"py-spy failed: {proc.stderr if proc else 'did not finish'}", file=sys.stderr)
        return 1
    summary = summarise(parse_raw(raw.read_text()))
    meta = {
        "server": "proto_aiohttp_hop" if args.server == "proto" else f"kilo-agent ({args.server})",
        "transport": transport,
        "duration": args.duration,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "py_spy_mode": "native" if args.native else "Python-frames",
        "calls_per_s": phase["calls_per_s"],
        "server_cpu_us_per_call": phase["server_cpu_us_per_call"] or 0.0,
        "errors": phase["errors"],
        "raw": str(raw.relative_to(HERE.parent)),
    }
    return _write(results, name, summary, meta)


def _write(results: Path, name: str, summary: dict[str, Any], meta: dict[str, Any]) -> int:
    table = markdown(summary, meta)
    (results / f"{name}.json").write_text(json.dumps({"meta": meta, **summary}, indent=2) + "\n")
    (results / f"{name}.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
