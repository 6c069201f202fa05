"""The container image the Helm chart runs: Dockerfile structure, the wheel it installs, and
`kilo-agent-probe`, the health check sidecar probes run. No Docker engine is needed: the
Dockerfile is parsed, its build context and wheel command are replayed, and the probe is run
against a real gRPC health server."""

from __future__ import annotations

import fnmatch
import json
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PROBE = ROOT / "deploy" / "docker" / "kilo-agent-probe"
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cc ", "python3-dev", "libc6-dev")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            base = words[0]
            for name, value in args.items():
                base = base.replace("${%s}" % name, value).replace(f"${name}", value)  # noqa: UP031
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=alias))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[1]


def test_dockerfile_is_multi_stage_on_slim_python(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    final = stages[-1]
    for stage in stages:
        assert stage.base.startswith("python:3.11-slim"), stage.base
    assert final.all("COPY"), "the runtime stage copies the built environment in"
    assert any("--from=" in copy for copy in final.all("COPY"))


def test_final_stage_has_no_compilers_or_package_installs(stages: list[Stage]) -> None:
    final = stages[-1]
    for command in final.all("RUN"):
        assert "apt-get install" not in command, command
        assert "apk add" not in command, command
        for tool in COMPILERS:
            assert tool not in command, command
    for stage in stages:  # wheels only: nothing is compiled anywhere
        for command in stage.all("RUN"):
            assert "build-essential" not in command


def test_final_stage_runs_as_numeric_non_root(stages: list[Stage]) -> None:
    (user,) = stages[-1].all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_entrypoint_is_kilo_agent_serve(stages: list[Stage]) -> None:
    (entrypoint,) = stages[-1].all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["kilo-agent", "serve"]  # exec form: signals reach it
    (cmd,) = stages[-1].all("CMD")
    assert json.loads(cmd) == ["--listen", "0.0.0.0:50051"]


def test_probe_is_installed_on_the_path(stages: list[Stage]) -> None:
    copies = [shlex.split(c) for c in stages[-1].all("COPY")]
    assert [
        "--chmod=0755",
        "deploy/docker/kilo-agent-probe",
        "/usr/local/bin/kilo-agent-probe",
    ] in (copies)


def dockerignore_allows(path: str) -> bool:
    """Whether .dockerignore keeps `path` in the build context (last matching rule wins)."""
    keep = True
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern == "**" or any(
            fnmatch.fnmatch(p, pattern.removeprefix("**/")) for p in prefixes
        ):
            keep = negate
    return keep


def context_sources(stages: list[Stage]) -> list[str]:
    """Paths the Dockerfile copies from the build context (not from another stage)."""
    sources: list[str] = []
    for stage in stages:
        for copy in stage.all("COPY"):
            words = [w for w in shlex.split(copy) if not w.startswith("--")]
            if any(w.startswith("--from") for w in shlex.split(copy)):
                continue
            sources.extend(words[:-1])
    return sources


def test_build_context_holds_what_the_dockerfile_copies(stages: list[Stage]) -> None:
    sources = context_sources(stages)
    assert {"pyproject.toml", "README.md", "agent"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert dockerignore_allows(source), f".dockerignore drops {source}"
    for dropped in (".venv/bin/python", ".git/HEAD", "tests/test_helm_image.py"):
        assert not dockerignore_allows(dropped), dropped


def test_the_wheel_the_image_installs_builds(stages: list[Stage], tmp_path: Path) -> None:
    """Replays the build stage: the same build context and the same `pip wheel` command.
    --no-build-isolation keeps it offline (setuptools from this environment)."""
    import setuptools

    assert int(setuptools.__version__.split(".")[0]) >= 68, "the dev extra pins setuptools>=70.1"
    build = stages[0]
    (wheel_command,) = [c for c in build.all("RUN") if c.startswith("pip wheel")]
    assert shlex.split(wheel_command)[:4] == ["pip", "wheel", ".", "--no-deps"]
    context = tmp_path / "src"
    context.mkdir()
    for source in context_sources([build]):
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, context / source)
    out = tmp_path / "wheels"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", str(context), "--no-deps"),
            *("--no-build-isolation", "--no-index", "-w", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("kilo_agent-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "agent/__init__.py" in names
        assert "agent/api/kilo/agent/v1/agent_pb2.py" in names
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "kilo-agent = agent.cli:main" in archive.read(entry_points).decode()
        assert not any(n.startswith("tests/") for n in names)


# -- kilo-agent-probe against a real gRPC health service -------------------------------------------


@pytest.fixture
def health_server(tmp_path: Path) -> Iterator[tuple[health.HealthServicer, str, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    socket_address = f"unix://{tmp_path / 'agent.sock'}"
    server.add_insecure_port(socket_address)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, socket_address, f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-S", str(PROBE), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_probe_passes_when_serving(health_server: tuple[health.HealthServicer, str, str]) -> None:
    servicer, socket_address, tcp_address = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for address in (socket_address, tcp_address, socket_address.replace("unix://", "unix:")):
        result = probe(address)
        assert result.returncode == 0, result.stderr
        assert "SERVING" in result.stdout


def test_probe_fails_when_not_serving(
    health_server: tuple[health.HealthServicer, str, str],
) -> None:
    servicer, socket_address, _ = health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    result = probe(socket_address)
    assert result.returncode == 1
    assert "NOT_SERVING" in result.stdout


def test_probe_checks_a_named_service(
    health_server: tuple[health.HealthServicer, str, str],
) -> None:
    servicer, socket_address, _ = health_server
    servicer.set("kilo.agent.v1.IntegrationAgent", health_pb2.HealthCheckResponse.SERVING)
    assert probe(socket_address, "kilo.agent.v1.IntegrationAgent").returncode == 0
    assert probe(socket_address, "no.such.Service").returncode == 1


def test_probe_fails_without_a_server(tmp_path: Path) -> None:
    result = probe(f"unix://{tmp_path / 'missing.sock'}")
    assert result.returncode == 1
    assert "missing.sock" in result.stderr


def test_probe_needs_only_the_standard_library() -> None:
    text = PROBE.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/local/bin/python3 -IS\n")
    imports = {
        line.split()[1].split(".")[0]
        for line in text.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports <= set(sys.stdlib_module_names) | {"__future__"}
