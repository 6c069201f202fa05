"""The loopback upstream of the benchmarks: a private nginx, or an aiohttp server without nginx.

Both answer ``POST /v1/chat/completions`` with the same canned 1 KiB OpenAI-shaped
``chat.completion`` JSON, keep connections alive, and listen on 127.0.0.1 only. nginx runs
privately (own prefix, config and pid file, ``daemon off;``) as a child process, never as the
system service. It also listens on a second port speaking HTTP/2 with prior knowledge (h2c), so
the benchmark can compare HTTP/1.1 and HTTP/2 on loopback.

Run alone: ``python benchmarks/upstream.py --port 18080`` (aiohttp; used as the fallback).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHAT_PATH = "/v1/chat/completions"
BODY_SIZE = 1024
SIZED_PATH = "/v1/sized/{size}"  # POST: a chat.completion padded to exactly {size} bytes
SIZES = (1024, 64 * 1024, 1024 * 1024)
SSE_PATH = "/v1/sse/chat"  # POST: a canned multi-event chat.completion.chunk SSE stream
SSE_EVENTS = 128
BIG_PATH = "/v1/big/stream"  # POST: BIG_SIZE bytes of application/octet-stream
BIG_SIZE = 100 * 1024 * 1024


def canned_completion(size: int = BODY_SIZE) -> bytes:
    """An OpenAI ``chat.completion`` object padded to exactly ``size`` bytes of JSON."""
    doc = {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion",
        "created": 1732500000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 24, "completion_tokens": 180, "total_tokens": 204},
    }
    base = len(json.dumps(doc, separators=(",", ":")).encode())
    words = "The quick brown fox jumps over the lazy dog. "
    need = size - base
    if need < 0:
        raise ValueError(f"size {size} is below the skeleton's {base} bytes")
    doc["choices"][0]["message"]["content"] = (words * (need // len(words) + 1))[:need]  # type: ignore[index]
    body = json.dumps(doc, separators=(",", ":")).encode()
    assert len(body) == size, len(body)
    return body


def canned_sse(events: int = SSE_EVENTS) -> bytes:
    """An OpenAI streaming answer: ``events`` chat.completion.chunk events, then ``[DONE]``."""
    out = []
    for i in range(events):
        chunk = {
            "id": "chatcmpl-bench0000000000000000000000",
            "object": "chat.completion.chunk",
            "created": 1732500000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": f"word{i:04d} "},
                    "logprobs": None,
                    "finish_reason": "stop" if i == events - 1 else None,
                }
            ],
        }
        out.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def sse_size() -> int:
    return len(canned_sse())


def write_big(path: Path, size: int = BIG_SIZE) -> None:
    """``size`` bytes of a repeating pattern, written in 1 MiB blocks."""
    block = (b"kilo-agent streaming benchmark " * 40000)[: 1 << 20]
    with path.open("wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


def chat_request_body() -> bytes:
    """The request every scenario sends (a small OpenAI chat request)."""
    return json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": "Say hello to the benchmark."},
            ],
            "max_tokens": 200,
        },
        separators=(",", ":"),
    ).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if the harness dies, so no server is left behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def wait_port(port: int, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {limit}s")


@dataclass
class Upstream:
    kind: str  # "nginx" or "aiohttp"
    port: int
    h2c_port: int | None  # HTTP/2 prior-knowledge port (nginx only)
    proc: subprocess.Popen[bytes]
    version: str = ""
    workdir: str | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# What every private nginx of the benchmarks starts with (own prefix, no daemon, loopback).
NGINX_PREAMBLE = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    keepalive_timeout 120s;
    keepalive_requests 10000000;
"""

_NGINX_CONF = (
    NGINX_PREAMBLE
    + """\
    http2_max_requests 10000000;
    http2_max_concurrent_streams 1024;
    client_body_buffer_size 64k;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        listen 127.0.0.1:{h2c_port} http2 backlog=4096;
        location = {path} {{
            if ($request_method != POST) {{ return 405; }}
            default_type application/json;
            return 200 '{body}';
        }}
        # canned files; POST is turned into a GET of the same file (static files refuse POST)
        location /v1/sized/ {{
            root {prefix}/www; default_type application/json; error_page 405 =200 $uri;
        }}
        location /v1/sse/ {{
            root {prefix}/www; default_type text/event-stream; error_page 405 =200 $uri;
        }}
        location /v1/big/ {{
            root {prefix}/www; default_type application/octet-stream; error_page 405 =200 $uri;
        }}
        location = /nginx_status {{ stub_status; }}
        location / {{ return 404; }}
    }}
}}
"""
)


def write_files(www: Path) -> None:
    """The canned bodies nginx serves as files: sized completions, the SSE stream, 100 MiB."""
    for sub in ("sized", "sse", "big"):
        (www / "v1" / sub).mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        (www / SIZED_PATH.format(size=size).lstrip("/")).write_bytes(canned_completion(size))
    (www / SSE_PATH.lstrip("/")).write_bytes(canned_sse())
    write_big(www / BIG_PATH.lstrip("/"))


def start_nginx(nginx: str) -> Upstream:
    body = canned_completion().decode()
    if "'" in body or "$" in body or "\\" in body:
        raise ValueError("the canned body must not hold quotes, $ or backslashes for nginx")
    prefix = tempfile.mkdtemp(prefix="kilo-bench-nginx-")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(f"{prefix}/tmp/{sub}", exist_ok=True)
    write_files(Path(prefix, "www"))
    # nginx's worker may run as an unprivileged user (when the harness runs as root): let it
    # read the canned files (nothing secret in there)
    for path in (Path(prefix), *Path(prefix, "www").rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    port, h2c_port = free_port(), free_port()
    conf = Path(prefix, "nginx.conf")
    conf.write_text(
        _NGINX_CONF.format(prefix=prefix, port=port, h2c_port=h2c_port, path=CHAT_PATH, body=body)
    )
    version = subprocess.run(
        [nginx, "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    test = subprocess.run(
        [nginx, "-t", "-p", prefix, "-c", str(conf), "-e", f"{prefix}/error.log"],
        capture_output=True,
        text=True,
        check=False,
    )
    if test.returncode != 0:
        shutil.rmtree(prefix, ignore_errors=True)
        raise RuntimeError(f"nginx rejected its config: {test.stderr}")
    proc = subprocess.Popen(
        [nginx, "-p", prefix, "-c", str(conf), "-e", f"{prefix}/error.log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        wait_port(port)
        wait_port(h2c_port)
    except RuntimeError:
        proc.kill()
        raise
    up = Upstream("nginx", port, h2c_port, proc, version=version.replace("nginx version: ", ""))
    up.workdir = prefix
    return up


def start_aiohttp() -> Upstream:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        wait_port(port)
    except RuntimeError:
        proc.kill()
        raise
    import aiohttp

    return Upstream("aiohttp", port, None, proc, version=f"aiohttp {aiohttp.__version__}")


def start_upstream(prefer: str = "nginx") -> Upstream:
    """nginx when installed (and not refused), else the aiohttp fallback."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    up = start_nginx(nginx) if prefer == "nginx" and nginx else start_aiohttp()
    up.pids = [up.proc.pid]
    try:  # nginx's worker does the work; count the master and its workers
        import psutil

        up.pids += [c.pid for c in psutil.Process(up.proc.pid).children(recursive=True)]
    except Exception:
        pass
    return up


# -- the aiohttp fallback, run as its own process -----------------------------------------


def _serve_aiohttp(port: int) -> None:
    from aiohttp import web

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    body = canned_completion()

    sized = {size: canned_completion(size) for size in SIZES}
    sse = canned_sse()
    block = (b"kilo-agent streaming benchmark " * 40000)[: 1 << 20]

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    async def sized_body(request: web.Request) -> web.Response:
        await request.read()
        data = sized.get(int(request.match_info["size"]))
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/json")

    async def sse_body(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=sse, content_type="text/event-stream")

    async def big(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"content-type": "application/octet-stream"})
        response.content_length = BIG_SIZE
        await response.prepare(request)
        left = BIG_SIZE
        while left > 0:
            await response.write(block[: min(left, len(block))])
            left -= len(block)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post(CHAT_PATH, chat)
    app.router.add_post("/v1/sized/{size}", sized_body)
    app.router.add_post(SSE_PATH, sse_body)
    app.router.add_post(BIG_PATH, big)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        print=None,
        access_log=None,
        keepalive_timeout=120,
        handle_signals=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    _serve_aiohttp(parser.parse_args().port)


if __name__ == "__main__":
    main()
