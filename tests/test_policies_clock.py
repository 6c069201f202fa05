"""FakeClock drives timers and sleeps deterministically; the package's public surface and its
import boundary (no gRPC, no OpenTelemetry, no config models)."""

from __future__ import annotations

import ast
import asyncio
import importlib
import pkgutil
from pathlib import Path

import agent.policies
from agent.policies import SYSTEM_CLOCK, FakeClock


def test_timers_fire_in_time_order_at_their_own_instant() -> None:
    clock = FakeClock(start=0.0)
    fired: list[tuple[str, float]] = []
    clock.call_later(2, lambda: fired.append(("b", clock.now())))
    clock.call_later(1, lambda: fired.append(("a", clock.now())))
    cancelled = clock.call_later(1.5, lambda: fired.append(("x", clock.now())))
    cancelled.cancel()
    clock.call_later(5, lambda: fired.append(("late", clock.now())))
    clock.advance(3)
    assert fired == [("a", 1.0), ("b", 2.0)]
    assert clock.now() == 3.0
    assert clock.pending == 1
    assert clock.next_deadline() == 5.0


def test_wall_moves_with_now() -> None:
    clock = FakeClock(start=10.0, wall_start=1_000.0)
    clock.advance(2.5)
    assert clock.wall() == 1_002.5


async def test_run_for_lets_woken_tasks_sleep_again_before_time_moves_on() -> None:
    clock = FakeClock(start=0.0)
    wakes: list[float] = []

    async def ticker() -> None:
        for _ in range(5):
            await clock.sleep(1)
            wakes.append(clock.now())

    task = asyncio.create_task(ticker())
    await clock.run_for(10)
    assert task.done()
    assert wakes == [1, 2, 3, 4, 5]
    assert clock.now() == 10
    assert clock.pending == 0


async def test_cancelled_sleep_leaves_no_timer() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(100))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert clock.pending == 0


async def test_system_clock_timers() -> None:
    fired = asyncio.Event()
    SYSTEM_CLOCK.call_later(0.001, fired.set)
    await asyncio.wait_for(fired.wait(), 1)
    t0 = SYSTEM_CLOCK.now()
    await SYSTEM_CLOCK.sleep(0.01)
    assert SYSTEM_CLOCK.now() - t0 >= 0.009


def test_public_names_resolve() -> None:
    for name in agent.policies.__all__:
        assert hasattr(agent.policies, name), name
    for info in pkgutil.iter_modules(agent.policies.__path__):
        module = importlib.import_module(f"agent.policies.{info.name}")
        for name in getattr(module, "__all__", ()):
            assert hasattr(module, name), f"{info.name}.{name}"


def test_policies_import_only_the_stdlib_errors_and_events() -> None:
    allowed_agent = {"agent.errors", "agent.events"}
    forbidden_roots = {"grpc", "opentelemetry", "httpx", "pydantic"}
    for path in Path(agent.policies.__path__[0]).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden_roots, f"{path.name} imports {name}"
                if name.startswith("agent.") and not name.startswith("agent.policies"):
                    assert name in allowed_agent, f"{path.name} imports {name}"
