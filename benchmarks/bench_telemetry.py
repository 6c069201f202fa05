"""What telemetry costs: the same ``Call`` load with telemetry on and with ``OTEL_SDK_DISABLED``.

A real ``python -m agent serve`` (pinned to core 0) in front of the loopback upstream of
bench_call.py (nginx, or aiohttp), driven by bench_call's closed-loop gRPC load generators
(core 1). Scenarios, one agent process each with the same config and audit log (to a file),
all started at once; each round measures one 3 s window per scenario in turn, so that this
machine's drift in speed (+-15 % over minutes) hits every scenario alike:

* ``sdk-disabled``   ``OTEL_SDK_DISABLED=true`` (the baseline);
* ``on-no-export``   telemetry on, no endpoint: spans and metrics made, exported nowhere;
* ``on-otlp``        telemetry on, OTLP/gRPC to a real receiver in this process
                     (tests/support/otlp_receiver.py), 1 s metric interval, 1 s span batches;
* ``on-otlp-sampled`` the same with ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` at 0.1
                     (metrics and audit lines stay complete; 1 trace in 10 is exported);
* ``on-otlp-down``   telemetry on, OTLP/gRPC to a port where nothing listens.

Reported: calls/s at saturation, p50/p99, server CPU µs per call (medians over the rounds), and
for each "on" scenario the throughput lost and the µs per call added over the baseline of the
same round (median and range over rounds; target: < 15 %).

    .venv/bin/python benchmarks/bench_telemetry.py            # ~6 minutes (12 rounds)
    .venv/bin/python benchmarks/bench_telemetry.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import bench_call  # noqa: E402
import loadgen  # noqa: E402
import upstream as upstream_mod  # noqa: E402

from tests.support.otlp_receiver import OtlpReceiver  # noqa: E402

#: Run by default; on-otlp-traces-only and on-otlp-metrics-only (in _SCENARIO_ENV) are for
#: finding where export costs go (--scenarios ...).
SCENARIOS = ("sdk-disabled", "on-no-export", "on-otlp", "on-otlp-sampled", "on-otlp-down")


#: Export settings shared by the scenarios that export to the receiver: spans and metrics leave
#: within ~1 s of a call.
_PROMPT_EXPORT = {"OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_BSP_SCHEDULE_DELAY": "1000"}
_SCENARIO_ENV: dict[str, dict[str, str]] = {
    "sdk-disabled": {"OTEL_SDK_DISABLED": "true"},
    "on-no-export": {},
    "on-otlp": _PROMPT_EXPORT,
    "on-otlp-sampled": {
        **_PROMPT_EXPORT,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    },
    "on-otlp-traces-only": {**_PROMPT_EXPORT, "OTEL_METRICS_EXPORTER": "none"},
    "on-otlp-metrics-only": {**_PROMPT_EXPORT, "OTEL_TRACES_EXPORTER": "none"},
    "on-otlp-down": {"OTEL_METRIC_EXPORT_INTERVAL": "1000"},
}


def scenario_env(name: str, receiver: OtlpReceiver, dead_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONUNBUFFERED"] = "0"
    env.update(_SCENARIO_ENV[name])
    if name == "on-otlp-down":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{dead_port}"
    elif name.startswith("on-otlp"):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    return env


def start_agent(name: str, base_url: str, env: dict[str, str]) -> bench_call.Server:
    workdir = tempfile.mkdtemp(prefix=f"kilo-bench-telemetry-{name}-")
    address = f"127.0.0.1:{upstream_mod.free_port()}"
    config = Path(workdir, "agent.yaml")
    audit = Path(workdir, "audit.jsonl")
    config.write_text(
        bench_call.agent_config(base_url, None) + f'telemetry: {{audit_log: "{audit}"}}\n'
    )
    log = Path(workdir, "server.log")
    argv = [sys.executable, "-m", "agent", "serve", "--config", str(config), "--listen", address]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=bench_call._pin_server,
        )
    server = bench_call.Server(name, proc, address, workdir, log, {"audit": str(audit)})
    try:
        bench_call._wait_ready(server)
    except Exception:
        server.stop()
        raise
    return server


def measure(
    server: bench_call.Server, pool: cf.ProcessPoolExecutor, up: Any, args: Any
) -> dict[str, Any]:
    """One closed-loop window against a running agent, then a pause for its export backlog."""
    spec = bench_call.chat_call_spec(server.address)
    sat = bench_call.run_phase(
        pool,
        mode="closed",
        workers=args.clients,
        spec=spec,
        args=args,
        server_pid=server.pid,
        upstream_pids=up.pids,
        upstream_port=up.port,
    )
    # Spans and metrics of this window are exported within ~1 s (OTEL_BSP_SCHEDULE_DELAY,
    # OTEL_METRIC_EXPORT_INTERVAL): let that finish before the next agent's window starts.
    time.sleep(args.settle)
    keys = ("calls_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_call", "errors")
    keys += ("server_core_util", "client_core_util", "upstream_cpu_us_per_call")
    return {k: sat[k] for k in keys}


def stop(server: bench_call.Server) -> dict[str, Any]:
    rc = server.stop()
    audit = Path(server.extra["audit"])
    lines = sum(1 for _ in audit.open()) if audit.exists() else 0
    shutil.rmtree(server.workdir, ignore_errors=True)
    return {"exit_code": rc, "audit_lines": lines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per window")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--settle", type=float, default=1.2, help="pause after each window")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=12, help="rounds (a window per scenario each); medians"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma list from: {', '.join(_SCENARIO_ENV)}",
    )
    parser.add_argument("--upstream", choices=("nginx", "aiohttp"), default="nginx")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(HERE / "results" / "bench_telemetry.json"))
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.repeat, args.settle = 1.5, 0.3, 1, 0.5
    args.rate = 1.0  # run_phase reads it for open-loop phases only
    names = [n for n in args.scenarios.split(",") if n]
    bench_call._pin(bench_call.LOAD_CORE)
    up = upstream_mod.start_upstream(args.upstream)
    receiver = OtlpReceiver().start()
    dead_port = upstream_mod.free_port()
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    ctx = multiprocessing.get_context("spawn")
    servers: dict[str, bench_call.Server] = {}
    ends: dict[str, dict[str, Any]] = {}
    try:
        # Every agent runs for the whole benchmark (all pinned to the server core, idle but for
        # their timers while another is measured); rounds of short windows, one per scenario,
        # so that the machine's drift hits every scenario alike.
        for name in names:
            servers[name] = start_agent(name, up.base_url, scenario_env(name, receiver, dead_port))
        with cf.ProcessPoolExecutor(max_workers=args.clients, mp_context=ctx) as pool:
            list(pool.map(loadgen.warm, range(args.clients)))
            for rep in range(args.repeat):
                print(f"round {rep + 1}/{args.repeat} ...", file=sys.stderr)
                for name in names:
                    results[name].append(measure(servers[name], pool, up, args))
    finally:
        for name, server in servers.items():
            ends[name] = stop(server)
        receiver.stop()
        up.stop()
    rows = []
    for name in names:
        runs = results[name]
        row: dict[str, Any] = {"scenario": name, "runs": runs, **ends.get(name, {})}
        for key in ("calls_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_call"):
            row[key] = statistics.median(r[key] for r in runs)
        row["errors"] = sum(sum(r["errors"].values()) for r in runs)
        rows.append(row)
    base = next((r for r in rows if r["scenario"] == "sdk-disabled"), None)
    lines = [
        "| scenario | calls/s | p50 ms | p99 ms | server CPU µs/call | throughput cost (range) | "
        "µs/call added | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        cost = added = "-"
        if base and row is not base:
            # Paired per round (each round runs every scenario back to back), then the median:
            # this machine's speed drifts by +-15 % over minutes, which a ratio of medians of
            # separate runs would mistake for telemetry cost.
            pairs = list(zip(row["runs"], base["runs"], strict=True))
            costs = [(1 - r["calls_per_s"] / b["calls_per_s"]) * 100 for r, b in pairs]
            adds = [r["server_cpu_us_per_call"] - b["server_cpu_us_per_call"] for r, b in pairs]
            row["throughput_cost_pct"] = statistics.median(costs)
            row["throughput_cost_pct_range"] = [min(costs), max(costs)]
            row["cpu_us_added"] = statistics.median(adds)
            cost = f"{row['throughput_cost_pct']:.1f} %"
            if len(costs) > 1:
                cost += f" ({min(costs):.0f}-{max(costs):.0f})"
            added = f"{row['cpu_us_added']:.0f}"
        lines.append(
            f"| {row['scenario']} | {row['calls_per_s']:,.0f} | {row['p50_ms']:.1f} | "
            f"{row['p99_ms']:.1f} | {row['server_cpu_us_per_call']:.0f} | {cost} | {added} | "
            f"{row['errors']} |"
        )
    table = "\n".join(lines)
    report = {
        "benchmark": "bench_telemetry",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": bench_call.machine(),
        "upstream": {"kind": up.kind, "version": up.version},
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "clients": args.clients,
            "repeat": args.repeat,
        },
        "otlp_received": {
            "trace_requests": len(receiver.traces),
            "metric_requests": len(receiver.metrics),
        },
        "scenarios": rows,
        "markdown": table,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
