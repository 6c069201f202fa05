"""``kilo-agent demo``: the tour runs by itself, exits 0, and shows every policy acting."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.demo import token_refresh
from agent.demo.fake_upstream import FakeUpstream
from agent.demo.render import Printer
from agent.errors import ConfigError, ConfigProblem

ROOT = Path(__file__).resolve().parent.parent
SECRET_MARKERS = ("kilo-demo-secret-", "kilo-demo-token-", "Bearer ", "Basic ")


@pytest.fixture(scope="module")
def tour() -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--fast"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rows(out: str, pattern: str) -> list[str]:
    return [line for line in out.splitlines() if re.search(pattern, line)]


def test_demo_exits_0_and_says_done(tour: subprocess.CompletedProcess[str]) -> None:
    assert tour.returncode == 0, tour.stdout + tour.stderr
    assert "UNEXPECTED" not in tour.stdout
    assert "Traceback" not in tour.stderr
    assert "Done in" in tour.stdout
    assert len(tour.stdout.splitlines()) <= 80


def test_rate_limit_refuses_then_queues(tour: subprocess.CompletedProcess[str]) -> None:
    refused = rows(tour.stdout, r"GET /items\s+RESOURCE_EXHAUSTED RATE_LIMITED\s+\d+ms$")
    assert len(refused) == 5  # 8 calls, burst 3, max_wait 0; each with a RetryInfo delay
    queued = rows(tour.stdout, r"GET /items\s+200\s+1\s+\d+ms\s+queue$")
    assert len(queued) == 8
    assert max(int(re.findall(r"(\d+)ms\s+queue$", row)[0]) for row in queued) > 100


def test_retry_takes_three_attempts(tour: subprocess.CompletedProcess[str]) -> None:
    assert rows(tour.stdout, r"GET /flaky\s+200\s+3\s+\d+ms\s+flaky$")
    assert "upstream answered 503, 503, 200" in tour.stdout


def test_breaker_opens_fails_fast_and_closes(tour: subprocess.CompletedProcess[str]) -> None:
    out = tour.stdout
    assert len(rows(out, r"GET /orders\s+500\s")) == 4
    assert "the breaker is OPEN" in out
    assert len(rows(out, r"GET /orders\s+UNAVAILABLE CIRCUIT_OPEN\s+\d+ms$")) == 2
    assert "upstream hits while open: 0" in out
    assert rows(out, r"GET /orders\s+200 \(half-open trial\)")
    assert "the breaker is CLOSED again" in out


def test_fallback_names_the_backup(tour: subprocess.CompletedProcess[str]) -> None:
    assert rows(tour.stdout, r"GET /items\s+200\s+2\s+\d+ms\s+backup$")
    assert "meta.integration says 'backup'" in tour.stdout


def test_second_get_is_a_cache_hit(tour: subprocess.CompletedProcess[str]) -> None:
    assert rows(tour.stdout, r"GET /catalog\s+200\s+1\s")
    assert rows(tour.stdout, r"GET /catalog\s+200 \(cache hit\)\s+0\s")
    assert "upstream /catalog hits: 1" in tour.stdout


def test_token_refresh_runs_or_says_it_is_skipped(tour: subprocess.CompletedProcess[str]) -> None:
    out = tour.stdout
    if "skipped: needs the credentials issue" in out:
        return
    assert rows(out, r"GET /secure\s+200 \(upstream saw token #1\)")
    assert rows(out, r"GET /secure\s+200 \(upstream saw token #2\)")
    assert "token requests: 2" in out


def test_no_secret_is_shown(tour: subprocess.CompletedProcess[str]) -> None:
    for marker in SECRET_MARKERS:
        assert marker not in tour.stdout
        assert marker not in tour.stderr


async def test_token_step_is_skipped_when_the_build_cannot_get_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(config: object) -> None:
        raise ConfigError([ConfigProblem("integrations.oauth.auth.type", "not in this build")])

    monkeypatch.setattr(token_refresh, "AgentApp", refuse)
    upstream = FakeUpstream(client_secret="unused")
    upstream.start()
    out = io.StringIO()
    try:
        result = await token_refresh.token_refresh_step(
            Printer(out), upstream, started=0.0, secret="unused", lifetime=1.0
        )
    finally:
        upstream.stop()
    assert not result.ran
    assert result.problems == []
    assert "skipped: needs the credentials issue" in out.getvalue()
    assert upstream.token_requests == 0
