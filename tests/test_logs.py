"""Structured logs: JSON lines by default, text on request, and never a secret."""

from __future__ import annotations

import io
import json
import logging

import pytest

from agent.logs import setup_logging

SECRET = "sk-live-Hq2xY7pLm3Nv"


@pytest.fixture
def stream():  # type: ignore[no-untyped-def]
    buffer = io.StringIO()
    yield buffer
    setup_logging(fmt="json", level="warning", stream=io.StringIO())


def test_json_lines_carry_extras(stream: io.StringIO) -> None:
    setup_logging(fmt="json", level="info", stream=stream)
    logging.getLogger("agent.test").info("serving", extra={"address": "127.0.0.1:1", "n": 3})
    record = json.loads(stream.getvalue())
    assert record["msg"] == "serving"
    assert record["level"] == "info"
    assert record["logger"] == "agent.test"
    assert record["address"] == "127.0.0.1:1"
    assert record["n"] == 3
    assert record["ts"].endswith("Z")


def test_text_format_is_one_readable_line(stream: io.StringIO) -> None:
    setup_logging(fmt="text", level="info", stream=stream)
    logging.getLogger("agent.test").warning("redis unreachable", extra={"dependency": "redis"})
    line = stream.getvalue().strip()
    assert "warning" in line
    assert "redis unreachable" in line
    assert "dependency=redis" in line
    with pytest.raises(json.JSONDecodeError):  # not JSON
        json.loads(line)


def test_secrets_are_scrubbed_from_message_args_extras_and_tracebacks(stream: io.StringIO) -> None:
    setup_logging(fmt="json", level="info", secrets=[SECRET], stream=stream)
    log = logging.getLogger("agent.test")
    log.info("token is %s", SECRET)
    log.info("header", extra={"authorization": f"Bearer {SECRET}"})
    try:
        raise RuntimeError(f"upstream said: bad key {SECRET}")
    except RuntimeError:
        log.exception("call failed")
    output = stream.getvalue()
    assert SECRET not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines[0]["msg"] == "token is ***"
    assert lines[1]["authorization"] == "Bearer ***"
    assert "bad key ***" in lines[2]["exc"]


def test_level_filters(stream: io.StringIO) -> None:
    setup_logging(fmt="json", level="warning", stream=stream)
    logging.getLogger("agent.test").info("hidden")
    assert stream.getvalue() == ""
