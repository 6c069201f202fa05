"""Checks on the project itself: generated code fresh, layers respected, public names exported."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "agent"

# DESIGN.md: what each layer may import (besides the stdlib and third-party packages).
ALLOWED = {
    "config": {"errors"},
    "errors": set(),
    "events": set(),
    "policies": {"config", "errors", "events"},
    "credentials": {"config", "errors", "events"},
    "transport": {"config", "errors"},
    "engine": {"policies", "credentials", "transport", "config", "errors", "events", "redis"},
    "redis": {"config", "errors", "events", "policies", "credentials"},
    "server": {"engine", "config", "api", "errors", "events"},
    "telemetry": {"config", "errors", "events"},
}
NO_GRPC = {"engine", "policies", "credentials", "config", "errors", "events", "transport", "redis"}


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"agent/api is stale, run `make proto`:\n{result.stderr}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_layers_import_only_what_design_allows() -> None:
    problems = []
    for path in AGENT.rglob("*.py"):
        rel = path.relative_to(AGENT)
        layer = rel.parts[0].removesuffix(".py")
        if layer not in ALLOWED:
            continue
        for name in _imports(path):
            if name.split(".")[0] == "grpc" and layer in NO_GRPC:
                problems.append(f"{rel} imports grpc")
            if not name.startswith("agent."):
                continue
            target = name.split(".")[1]
            if target != layer and target not in ALLOWED[layer]:
                problems.append(f"{rel} imports {name} ({layer} may not import {target})")
    assert problems == []


def test_nothing_but_app_imports_server() -> None:
    offenders = [
        str(p.relative_to(AGENT))
        for p in AGENT.rglob("*.py")
        if p.relative_to(AGENT).parts[0] not in ("server", "app.py")
        and any(n.startswith("agent.server") for n in _imports(p))
    ]
    assert offenders == []


def test_public_names_are_exported() -> None:
    import importlib

    for module in (
        "agent.engine",
        "agent.credentials",
        "agent.transport",
        "agent.server",
        "agent.config",
        "agent.errors",
        "agent.events",
        "agent.redis",
    ):
        mod = importlib.import_module(module)
        for name in mod.__all__:
            assert hasattr(mod, name), f"{module}.__all__ names {name}, which does not exist"
