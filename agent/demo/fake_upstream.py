"""The demo's upstream: a stdlib HTTP server on loopback that fails on purpose and counts hits.

Routes (the query string is ignored except where said):

| route | answers |
| --- | --- |
| ``GET /items`` | 200 and a small JSON list |
| ``GET /flaky?id=K&fail=N`` | 503 for the first N requests of ``K``, then 200 |
| ``GET /orders`` | 500 while :attr:`FakeUpstream.healthy` is false, else 200 |
| ``GET /catalog`` | 200, numbered so a cached answer is recognisable |
| ``POST /token`` | an OAuth 2.0 client-credentials token endpoint (Basic client auth) |
| ``GET /secure`` | 200 with the number of the bearer token it got, 401 for an unknown one |

Every request is counted per path (and each answer's status kept), so the demo can show what
reached the upstream, and what did not. Only the standard library: the demo runs wherever the
agent runs.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["CLIENT_ID", "TOKEN_PREFIX", "FakeUpstream"]

CLIENT_ID = "kilo-demo"
TOKEN_PREFIX = "kilo-demo-token-"  # noqa: S105 - a prefix, never printed by the demo


class FakeUpstream:
    """The server and what it saw; ``start`` serves it in a daemon thread, ``stop`` ends it."""

    def __init__(self, *, client_secret: str, token_lifetime: float = 3600.0) -> None:
        self.healthy = False  # /orders answers 500 until the demo "repairs" it
        self.token_lifetime = token_lifetime
        self._client_secret = client_secret
        self._lock = threading.Condition()  # notified at every request
        self._hits: defaultdict[str, int] = defaultdict(int)
        self._statuses: defaultdict[str, list[int]] = defaultdict(list)
        self._flaky: defaultdict[str, int] = defaultdict(int)
        self._tokens: dict[str, int] = {}  # access token -> its number
        self._catalog_served = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifetime ----------------------------------------------------------------------------

    def start(self) -> str:
        """Listen on 127.0.0.1 (a free port) and return the base URL."""
        upstream = self

        class Handler(_Handler):
            state = upstream

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # -- what it saw -------------------------------------------------------------------------

    def hits(self, path: str) -> int:
        """Requests that reached ``path`` (without query) so far."""
        with self._lock:
            return self._hits[path]

    def statuses(self, path: str) -> list[int]:
        """The statuses answered on ``path``, in order."""
        with self._lock:
            return list(self._statuses[path])

    @property
    def token_requests(self) -> int:
        return self.hits("/token")

    def wait_for_hits(self, path: str, count: int, timeout: float) -> bool:
        """Block (a worker thread, not the event loop) until ``path`` got ``count`` requests."""
        with self._lock:
            return self._lock.wait_for(lambda: self._hits[path] >= count, timeout)

    # -- routes ------------------------------------------------------------------------------

    def answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        status, payload = self._route(method, path, query, headers, body)
        with self._lock:
            self._hits[path] += 1
            self._statuses[path].append(status)
            self._lock.notify_all()
        return status, payload

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, Any]]:
        if path == "/items" and method == "GET":
            return 200, {"items": ["apple", "pear", "plum"]}
        if path == "/flaky":
            key = query.get("id", [""])[0]
            with self._lock:
                self._flaky[key] += 1
                seen = self._flaky[key]
            if seen <= int(query.get("fail", ["2"])[0]):
                return 503, {"error": "temporarily unavailable", "attempt": seen}
            return 200, {"ok": True, "attempt": seen}
        if path == "/orders":
            return (200, {"orders": []}) if self.healthy else (500, {"error": "database down"})
        if path == "/catalog":
            with self._lock:
                self._catalog_served += 1
                served = self._catalog_served
            return 200, {"catalog": ["apple", "pear"], "served": served}
        if path == "/token" and method == "POST":
            return self._token(headers, body)
        if path == "/secure":
            auth = headers.get("authorization", "")
            number = self._tokens.get(auth.removeprefix("Bearer ").strip())
            if number is None:
                return 401, {"error": "invalid_token"}
            return 200, {"token": number}
        return 404, {"error": "no such route"}

    def _token(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        expected = base64.b64encode(f"{CLIENT_ID}:{self._client_secret}".encode()).decode()
        given = headers.get("authorization", "")
        form = parse_qs(body.decode("utf-8", "replace"))
        if given != f"Basic {expected}" or form.get("grant_type") != ["client_credentials"]:
            return 401, {"error": "invalid_client"}
        token = TOKEN_PREFIX + secrets.token_hex(8)
        with self._lock:
            self._tokens[token] = len(self._tokens) + 1
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
        }


class _Handler(BaseHTTPRequestHandler):
    state: FakeUpstream
    protocol_version = "HTTP/1.1"  # keep-alive, as the agent's pooled client expects
    disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stall

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload = self.state.answer(self.command, self.path, headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the demo prints its own table."""
