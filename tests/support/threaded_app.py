"""Run an aiohttp application on 127.0.0.1 (a free port) in its own thread and event loop.

The loopback servers of the tests (upstream, token server) live for a whole session while each
test has its own event loop, so they get a loop of their own in a daemon thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aiohttp import web


@contextmanager
def serve_in_thread(
    make_app: Callable[[], web.Application], *, what: str
) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    """Serve ``make_app()`` for the block's life; yields ``(base URL, the server's loop)``."""
    ready = threading.Event()
    started: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        runner = web.AppRunner(make_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        started.update(url=f"http://127.0.0.1:{port}", loop=asyncio.get_running_loop(), stop=stop)
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError(f"{what} did not start within 10s")
    loop = started["loop"]
    assert isinstance(loop, asyncio.AbstractEventLoop)
    try:
        yield str(started["url"]), loop
    finally:
        stop = started["stop"]
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
