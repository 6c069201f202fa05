"""The command line as an operator uses it: real processes, a real agent, a real upstream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import SECRET, base_config
from tests.support.process import start_agent


def kilo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.fixture(scope="module")
def running_agent(tmp_path_factory, upstream):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("cli") / "agent.yaml"
    path.write_text(yaml.safe_dump(base_config(upstream.url)))
    agent = start_agent(path)
    yield agent
    assert agent.stop() == 0


@pytest.mark.parametrize("command", [[], ["serve"], ["check-config"], ["call"], ["status"]])
def test_help_explains_each_command(command: list[str]) -> None:
    result = kilo(*command, "--help")
    assert result.returncode == 0
    assert "usage: kilo-agent" in result.stdout
    assert len(result.stdout.splitlines()) > 5


def test_check_config_prints_resolved_config_without_secrets(tmp_path: Path, upstream) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(base_config(upstream.url)))
    result = kilo("check-config", str(path))
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["integrations"]["echo"]["auth"]["token"] == "***"
    assert SECRET not in result.stdout + result.stderr
    as_json = kilo("check-config", "--format", "json", str(path))
    assert json.loads(as_json.stdout)["integrations"]["echo"]["base_url"].startswith(
        "http://127.0.0.1"
    )


def test_check_config_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "listen": {"grpc": "127.0.0.1:50051"},
                "integrations": {
                    "openai": {"base_url": "https://api.openai.com/v1", "timout": "3s"},
                    "slow": {"base_url": "https://example.com", "timeout": "soon"},
                },
            }
        )
    )
    result = kilo("check-config", str(path))
    assert result.returncode == 1
    assert "integrations.openai.timout" in result.stderr
    assert "timeout" in result.stderr  # the suggestion
    assert "integrations.slow.timeout" in result.stderr


def test_check_config_missing_file(tmp_path: Path) -> None:
    result = kilo("check-config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "nope.yaml" in result.stderr


def test_call_prints_status_headers_body_and_meta(running_agent) -> None:  # type: ignore[no-untyped-def]
    result = kilo(
        "call",
        "echo",
        "POST",
        "/chat?x=1",
        "-H",
        "X-App: cli",
        "-d",
        '{"a": 1}',
        "--target",
        running_agent.address,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == 200
    echoed = json.loads(answer["body"])
    assert echoed["path"] == "/echo/base/chat"
    assert echoed["headers"]["x-app"] == "cli"
    assert answer["meta"]["integration"] == "echo"
    assert answer["meta"]["attempts"] == 1
    text = kilo("call", "up", "GET", "/status/418", "--target", running_agent.address)
    assert text.returncode == 0
    assert text.stdout.startswith("status: 418")
    assert "meta:" in text.stderr


def test_call_body_from_file_and_stream(tmp_path: Path, running_agent, upstream) -> None:  # type: ignore[no-untyped-def]
    body = tmp_path / "body.json"
    body.write_text('{"from": "file"}')
    result = kilo(
        "call", "echo", "PUT", "/f", "-d", f"@{body}", "--target", running_agent.address, "--json"
    )
    assert json.loads(json.loads(result.stdout)["body"])["body_b64"] == "eyJmcm9tIjogImZpbGUifQ=="
    streamed = kilo(
        "call", "up", "GET", "/sse?events=2", "--stream", "--target", running_agent.address
    )
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.startswith("status: 200")
    assert streamed.stdout.count("data: ") == 3


def test_call_error_shows_reason_and_details(running_agent) -> None:  # type: ignore[no-untyped-def]
    result = kilo("call", "echo", "GET", "//evil/x", "--target", running_agent.address)
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr
    assert "INVALID_REQUEST" in result.stderr
    assert "fieldViolations" in result.stderr


def test_call_to_no_agent_says_what_to_do() -> None:
    result = kilo("call", "echo", "GET", "/", "--target", "127.0.0.1:9", "--deadline", "2")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr


def test_status_table_and_json(running_agent, upstream) -> None:  # type: ignore[no-untyped-def]
    table = kilo("status", "--target", running_agent.address)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "BASE"]
    assert any(line.startswith("echo ") and "static" in line for line in lines)
    rows = json.loads(kilo("status", "--json", "--target", running_agent.address).stdout)
    assert {r["name"] for r in rows} == {"echo", "up", "restricted", "dead"}


def test_serve_with_default_config_enables_presets_from_env(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "OPENAI_API_KEY": "sk-env-test-1234567890",
        "HOME": str(tmp_path),
    }
    agent = start_agent(None, env=env)
    try:
        record = agent.wait_for_line(lambda r: "enabled" in r)
        assert "openai" in record["enabled"]
        listed = kilo("status", "--json", "--target", agent.address)
        rows = json.loads(listed.stdout)
        assert [r["base_url"] for r in rows if r["name"] == "openai"] == [
            "https://api.openai.com/v1"
        ]
    finally:
        assert agent.stop() == 0
    assert "sk-env-test-1234567890" not in agent.output()


def test_serve_with_bad_config_exits_with_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("integrations:\n  x:\n    base_url: ftp://nope\n")
    result = kilo("serve", "--config", str(path))
    assert result.returncode == 2
    assert "integrations.x.base_url" in result.stderr
