"""``kilo-agent serve --workers N``: N agent processes sharing one TCP port (SO_REUSEPORT).

One Python process uses one core, so a node with free cores runs several workers. The kernel
spreads incoming connections over them. Each worker is a whole agent: ``scope: local`` limits are
divided among the workers (each enforces ``1/N``); ``scope: global`` limits are shared through
Redis as between pods. The supervisor forwards SIGTERM/SIGINT to every worker (each drains its
own calls) and exits 0 when all did; if a worker dies on its own, it stops the others and exits 1
so that the orchestrator restarts the whole set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

__all__ = ["reserve_port", "supervise"]

_log = logging.getLogger("agent.workers")


def reserve_port(listen: str) -> tuple[str, socket.socket]:
    """Resolve ``host:0`` to a free port and hold it for the supervisor's life: bound with
    SO_REUSEPORT but never listening, the holder takes no connections, yet no other program can
    take the port between the workers' starts. Returns ``(host:port, holder socket)``."""
    host, _, port = listen.rpartition(":")
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((bare, int(port)))
    return f"{host}:{holder.getsockname()[1]}", holder


def supervise(worker_argv: Sequence[Sequence[str]]) -> int:
    """Run one process per argv, forward stop signals, and return the exit code of the set."""
    stopping = False
    children: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    for argv in worker_argv:
        children.append(subprocess.Popen([sys.executable, *argv]))  # shares stdout/stderr
    pids = [c.pid for c in children]
    _log.info("workers started", extra={"workers": len(children), "pids": pids})
    codes: dict[int, int] = {}
    while len(codes) < len(children):
        pid, status = os.wait()  # blocks; signals interrupt it and the handler forwards them
        code = os.waitstatus_to_exitcode(status)
        codes[pid] = code
        if not stopping:
            _log.error(
                "a worker exited on its own; stopping the others",
                extra={"pid": pid, "exit_code": code},
            )
            forward(signal.SIGTERM, None)
            stopping = True
            codes[pid] = code or 1
    failed = {pid: code for pid, code in codes.items() if code != 0}
    if failed:
        _log.error("workers stopped with errors", extra={"exit_codes": failed})
        return 1
    _log.info("workers stopped")
    return 0
