"""Start a real ``kilo-agent serve`` process and learn its address from its JSON log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AgentProcess:
    proc: subprocess.Popen[str]
    address: str = ""
    lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _pumps: list[threading.Thread] = field(default_factory=list)

    def wait_for_line(self, predicate, timeout: float = 15.0) -> dict:  # type: ignore[no-untyped-def]
        """Wait for a JSON log line matching ``predicate`` (fails the test after ``timeout``)."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: any(predicate(r) for r in self.records()) or self.proc.poll() is not None,
                timeout,
            )
            match = next((r for r in self.records() if predicate(r)), None)
        if not ok or match is None:
            raise AssertionError(f"log line not seen; agent output so far:\n{self.output()}")
        return match

    def records(self) -> list[dict]:
        out = []
        for line in self.lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (if still running), wait, and close the pipes; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        finally:
            for pump in self._pumps:
                pump.join(5)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()


def start_agent(
    config: Path | None,
    *,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    listen: str = "127.0.0.1:0",
) -> AgentProcess:
    """Run ``python -m agent serve`` and wait until it logs ``serving`` with its address."""
    args = [sys.executable, "-m", "agent", "serve", "--listen", listen, *extra_args]
    if config is not None:
        args += ["--config", str(config)]
    full_env = {**os.environ, **(env or {})}
    if config is not None:
        full_env.pop("KILO_AGENT_CONFIG", None)
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env
    )
    agent = AgentProcess(proc)
    for stream in (proc.stderr, proc.stdout):
        pump = threading.Thread(target=agent._pump, args=(stream,), daemon=True)
        pump.start()
        agent._pumps.append(pump)
    try:
        record = agent.wait_for_line(lambda r: r.get("msg") == "serving")
    except AssertionError:
        agent.stop()
        raise
    agent.address = record["address"]
    return agent
