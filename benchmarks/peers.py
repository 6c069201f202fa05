"""The peers the suite compares the agent with, each an HTTP proxy in front of the same upstream.

* ``nginx-proxy``: a second private nginx (one worker) doing ``proxy_pass`` with upstream
  keep-alive: the native floor of any proxy hop;
* ``litellm``: LiteLLM's proxy (``litellm[proxy]`` from PyPI) installed in its own venv under
  ``benchmarks/.peers/litellm-venv`` (never in the project's .venv), one worker, routing model
  ``gpt-4o-mini`` to ``openai/gpt-4o-mini`` at the upstream's base URL;
* ``portkey``: Portkey's gateway (``@portkey-ai/gateway`` from npm) installed under
  ``benchmarks/.peers/portkey``, run with node, forced onto 127.0.0.1 by ``bind_loopback.cjs``
  (it listens on all interfaces otherwise), told the upstream with ``x-portkey-custom-host``.

All of them receive the same OpenAI-shaped ``POST /v1/chat/completions``. ``install(name)``
installs a peer when missing; ``start(name, upstream_port)`` returns a running
``bench_call.Server`` (pinned to the server core) and the request spec the load generator
needs, or raises ``PeerUnavailable`` saying why.

    .venv/bin/python benchmarks/peers.py --install          # install LiteLLM and Portkey
    .venv/bin/python benchmarks/peers.py --check            # start each once, one request
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_call  # noqa: E402
import upstream as upstream_mod  # noqa: E402

PEERS_DIR = HERE / ".peers"
LITELLM_VENV = PEERS_DIR / "litellm-venv"
PORTKEY_DIR = PEERS_DIR / "portkey"
PORTKEY_ENTRY = (
    PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
)
BIND_LOOPBACK = HERE / "bind_loopback.cjs"
PEERS = ("nginx-proxy", "portkey", "litellm")
MODEL = "gpt-4o-mini"


class PeerUnavailable(RuntimeError):
    """The peer cannot be installed or run here; the message says why."""


# -- install -----------------------------------------------------------------------------------


def _run(argv: list[str], log: Path, timeout: float, cwd: Path | None = None) -> None:
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            rc = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, timeout=timeout, check=False
            ).returncode
        except subprocess.TimeoutExpired as exc:
            raise PeerUnavailable(f"{argv[0]} took over {timeout:.0f}s (see {log})") from exc
    if rc != 0:
        raise PeerUnavailable(f"{' '.join(argv[:3])} ... failed with {rc} (see {log})")


def install(name: str, timeout: float = 600.0) -> str:
    """Install the peer if missing; returns its version. Raises PeerUnavailable."""
    PEERS_DIR.mkdir(exist_ok=True)
    log = PEERS_DIR / f"{name}-install.log"
    if name == "nginx-proxy":
        if _nginx() is None:
            raise PeerUnavailable("nginx is not installed (scripts/system-deps.sh --bench)")
        return _nginx_version()
    if name == "litellm":
        litellm = LITELLM_VENV / "bin" / "litellm"
        if not litellm.exists():
            py = shutil.which("python3") or sys.executable
            if not (LITELLM_VENV / "bin" / "python").exists():
                _run([py, "-m", "venv", str(LITELLM_VENV)], log, 120)
            pip = str(LITELLM_VENV / "bin" / "pip")
            _run([pip, "install", "-q", "litellm[proxy]"], log, timeout)
        return _pip_version(LITELLM_VENV / "bin" / "python", "litellm")
    if name == "portkey":
        if not PORTKEY_ENTRY.exists():
            node, npm = shutil.which("node"), shutil.which("npm")
            if node is None or npm is None:
                raise PeerUnavailable("node/npm are not installed")
            PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
            if not (PORTKEY_DIR / "package.json").exists():
                (PORTKEY_DIR / "package.json").write_text('{"name": "kilo-bench-peers"}\n')
            _run(
                [npm, "install", "--no-audit", "--no-fund", "@portkey-ai/gateway"],
                log,
                timeout,
                PORTKEY_DIR,
            )
        pkg = PORTKEY_ENTRY.parent.parent / "package.json"
        import json

        return "@portkey-ai/gateway " + json.loads(pkg.read_text())["version"]
    raise ValueError(name)


def _nginx() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )


def _nginx_version() -> str:
    nginx = _nginx() or "nginx"
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False).stderr
    return out.strip().replace("nginx version: ", "")


def _pip_version(python: Path, dist: str) -> str:
    out = subprocess.run(
        [str(python), "-c", f"from importlib.metadata import version; print(version({dist!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{dist} {out.stdout.strip()}"


# -- start -------------------------------------------------------------------------------------

_PROXY_CONF = (
    upstream_mod.NGINX_PREAMBLE
    + """\
    server_tokens off;
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
)

_LITELLM_CONF = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: http://127.0.0.1:{upstream_port}/v1
      api_key: {token}
litellm_settings:
  telemetry: false
  drop_params: true
  set_verbose: false
"""


def _spawn(name: str, argv: list[str], workdir: str, env: dict[str, str], port: int) -> Any:
    log = Path(workdir, "server.log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=bench_call._pin_server,
        )
    return bench_call.Server(name, proc, f"http://127.0.0.1:{port}", workdir, log)


def _clean_env() -> dict[str, str]:
    drop = ("OTEL_", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def request_spec(name: str, upstream_port: int) -> dict[str, Any]:
    """What the load generator sends to this peer (kind ``http``)."""
    headers = {"authorization": f"Bearer {bench_call.TOKEN}"}
    expect_len: int | None = None
    if name == "portkey":
        headers["x-portkey-provider"] = "openai"
        headers["x-portkey-custom-host"] = f"http://127.0.0.1:{upstream_port}/v1"
    if name == "nginx-proxy":
        expect_len = upstream_mod.BODY_SIZE  # passed through byte for byte
    return {
        "kind": "http",
        "path": upstream_mod.CHAT_PATH,
        "headers": headers,
        "expect_len": expect_len,
        "expect_contains": b'"chat.completion"',  # the peers re-serialize the JSON
    }


def start(name: str, upstream_port: int, ready_timeout: float = 90.0) -> tuple[Any, dict[str, Any]]:
    """Start the peer (pinned to the server core); returns (Server, request spec)."""
    version = install(name)
    workdir = tempfile.mkdtemp(prefix=f"kilo-bench-{name}-")
    port = upstream_mod.free_port()
    env = _clean_env()
    spec = request_spec(name, upstream_port)
    if name == "nginx-proxy":
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(f"{workdir}/tmp/{sub}", exist_ok=True)
        conf = Path(workdir, "nginx.conf")
        conf.write_text(_PROXY_CONF.format(prefix=workdir, port=port, upstream_port=upstream_port))
        nginx = _nginx() or "nginx"
        argv = [nginx, "-p", workdir, "-c", str(conf), "-e", f"{workdir}/error.log"]
    elif name == "litellm":
        conf = Path(workdir, "litellm.yaml")
        conf.write_text(
            _LITELLM_CONF.format(model=MODEL, upstream_port=upstream_port, token=bench_call.TOKEN)
        )
        # LiteLLM refuses to start without a master key: a random one for this run only, sent
        # by the load generator as its bearer token (the upstream key is in the config)
        master = "sk-" + secrets.token_hex(16)
        spec["headers"]["authorization"] = f"Bearer {master}"
        env.update(
            LITELLM_MASTER_KEY=master,
            LITELLM_LOCAL_MODEL_COST_MAP="True",  # no network fetch of the cost map at start
            LITELLM_LOG="ERROR",
            LITELLM_TELEMETRY="False",
            DISABLE_SCHEMA_UPDATE="True",
            PYTHONUNBUFFERED="1",
        )
        litellm = str(LITELLM_VENV / "bin" / "litellm")
        argv = [litellm, "--config", str(conf), "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--num_workers", "1"]
    elif name == "portkey":
        node = shutil.which("node") or "node"
        env.update(NODE_ENV="production")
        argv = [node, "-r", str(BIND_LOOPBACK), str(PORTKEY_ENTRY), "--headless", f"--port={port}"]
    else:
        raise ValueError(name)
    server = _spawn(name, argv, workdir, env, port)
    server.extra["version"] = version
    try:
        _wait_ready(server, port, spec, ready_timeout)
        _check_loopback_only(server)
    except Exception:
        server.stop()
        raise
    return server, spec


def _wait_ready(server: Any, port: int, spec: dict[str, Any], limit: float) -> None:
    """Ready = one real chat request answered 200 through the peer."""
    import httpx

    deadline = time.monotonic() + limit
    last = ""
    body = upstream_mod.chat_request_body()
    headers = {"content-type": "application/json", **spec["headers"]}
    with httpx.Client(trust_env=False, timeout=5) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise PeerUnavailable(
                    f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
                )
            try:
                r = client.post(
                    f"http://127.0.0.1:{port}{spec['path']}", content=body, headers=headers
                )
                if r.status_code == 200 and spec["expect_contains"] in r.content:
                    return
                last = f"status {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.3)
    raise PeerUnavailable(
        f"{server.name} not ready after {limit:.0f}s ({last}):\n{server.log_tail()}"
    )


def _check_loopback_only(server: Any) -> None:
    """Refuse to benchmark a peer that listens beyond loopback."""
    for pid in bench_call._tree(server.pid):
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            if c.status == "LISTEN" and c.laddr.ip not in ("127.0.0.1", "::1"):
                raise PeerUnavailable(f"{server.name} listens on {c.laddr.ip}:{c.laddr.port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true", help="install the missing peers")
    parser.add_argument("--check", action="store_true", help="start each peer once")
    parser.add_argument("--peers", default=",".join(PEERS))
    args = parser.parse_args()
    names = [n for n in args.peers.split(",") if n]
    rc = 0
    for name in names:
        try:
            print(f"{name}: {install(name)}")
        except PeerUnavailable as exc:
            print(f"{name}: unavailable: {exc}")
            rc = 1
    if args.check:
        up = upstream_mod.start_upstream()
        try:
            for name in names:
                try:
                    t = time.monotonic()
                    server, _ = start(name, up.port)
                    print(f"{name}: ready in {time.monotonic() - t:.1f}s at {server.address}")
                    server.stop()
                    shutil.rmtree(server.workdir, ignore_errors=True)
                except PeerUnavailable as exc:
                    print(f"{name}: unavailable: {exc}")
                    rc = 1
        finally:
            up.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
