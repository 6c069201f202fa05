"""Durations and sizes: what users write, what the agent reads, and how mistakes are reported."""

from __future__ import annotations

import pytest

from agent.config import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("1h2m3.5s", 3723.5),
        ("500us", 0.0005),
        ("0s", 0.0),
        (" 1m 30s ", 90.0),
        ("30", 30.0),
        ("0.5", 0.5),
        (30, 30.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_durations(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["abc", "1x", "5sm", "1.2.3s", "s", "inf", "nan", "", "  ", True])
def test_bad_durations_say_what_to_write(bad: object) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 250ms, 2s"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_errors_never_repeat_the_value() -> None:
    # The value may have come from an environment variable: it is never echoed.
    for parse in (parse_duration, parse_size):
        with pytest.raises(ValueError, match=r"e\.g\.") as info:
            parse("hunter2-sekrit")
        assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("bad", ["-1s", -3, -0.5])
def test_negative_durations(bad: str | int | float) -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10MiB", 10 * 1024 * 1024),
        ("512KiB", 512 * 1024),
        ("1MB", 1_000_000),
        ("1GiB", 1024**3),
        ("1.5MiB", 1_572_864),
        ("10 mib", 10 * 1024 * 1024),
        ("64Ki", 64 * 1024),
        ("2kb", 2000),
        ("100", 100),
        ("100B", 100),
        (4096, 4096),
        (0, 0),
    ],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["10XB", "abc", "MiB", "1.5", "", True, 1.5])
def test_bad_sizes_say_what_to_write(bad: object) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 512KiB, 10MiB"):
        parse_size(bad)  # type: ignore[arg-type]


def test_negative_size() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_size("-5")
