"""Durations and sizes as people write them: ``250ms``, ``1m30s``, ``10MiB``.

Numbers are seconds (durations) or bytes (sizes). Error messages list examples and never repeat
the value (it may have come from an environment variable).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["Duration", "Size", "parse_duration", "parse_size"]

_DURATION_EXAMPLES = "use e.g. 250ms, 2s, 1.5s, 1m30s, 1h, or a number of seconds"
_SIZE_EXAMPLES = "use e.g. 512KiB, 10MiB, 1GiB, 1MB, or a number of bytes"

_DURATION_UNITS: dict[str, Fraction] = {
    "ns": Fraction(1, 1_000_000_000),
    "us": Fraction(1, 1_000_000),
    "µs": Fraction(1, 1_000_000),
    "μs": Fraction(1, 1_000_000),  # Greek mu, the other common spelling
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86400),
}
_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1024,
    "ki": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "ti": 1024**4,
    "tib": 1024**4,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ns|us|µs|μs|ms|s|m|h|d)")
_DURATION_WHOLE = re.compile(rf"(?:{_NUMBER}(?:ns|us|µs|μs|ms|s|m|h|d))+")
_SIZE_WHOLE = re.compile(rf"({_NUMBER})\s*([a-z]*)")


def parse_duration(value: str | int | float) -> float:
    """Seconds from ``250ms``, ``2s``, ``1m30s``, ``1h``, ``1.5s`` or a number of seconds.

    Raises ``ValueError`` (message without the value) when it is not a non-negative duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"is not a duration; {_DURATION_EXAMPLES}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = "".join(value.split())
        if not text:
            raise ValueError(f"is empty; {_DURATION_EXAMPLES}")
        if re.fullmatch(_NUMBER, text):
            seconds = float(text)
        elif _DURATION_WHOLE.fullmatch(text):
            total = Fraction(0)
            for number, unit in _DURATION_PART.findall(text):
                total += Fraction(number) * _DURATION_UNITS[unit]
            seconds = float(total)
        elif text.startswith("-"):
            raise ValueError(f"must not be negative; {_DURATION_EXAMPLES}")
        else:
            raise ValueError(f"is not a duration; {_DURATION_EXAMPLES}")
    else:
        raise ValueError(f"is not a duration; {_DURATION_EXAMPLES}")
    if not math.isfinite(seconds):
        raise ValueError(f"is not a finite duration; {_DURATION_EXAMPLES}")
    if seconds < 0:
        raise ValueError(f"must not be negative; {_DURATION_EXAMPLES}")
    return seconds


def parse_size(value: str | int) -> int:
    """Bytes from ``10MiB``, ``512KiB``, ``1MB``, ``1GiB`` or a number of bytes.

    Binary units (KiB, MiB, GiB, TiB; also Ki/Mi/Gi and bare K/M/G) are powers of 1024; decimal
    units (KB, MB, GB, TB) powers of 1000. Units are case-insensitive.
    """
    if isinstance(value, bool):
        raise ValueError(f"is not a size; {_SIZE_EXAMPLES}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float) and value.is_integer():
        size = int(value)
    elif isinstance(value, str):
        match = _SIZE_WHOLE.fullmatch(value.strip().lower())
        if match is None or match.group(2) not in _SIZE_UNITS:
            if value.strip().startswith("-"):
                raise ValueError(f"must not be negative; {_SIZE_EXAMPLES}")
            raise ValueError(f"is not a size; {_SIZE_EXAMPLES}")
        exact = Fraction(match.group(1)) * _SIZE_UNITS[match.group(2)]
        if exact.denominator != 1 and _SIZE_UNITS[match.group(2)] == 1:
            raise ValueError(f"must be a whole number of bytes; {_SIZE_EXAMPLES}")
        size = math.floor(exact)
    else:
        raise ValueError(f"is not a size; {_SIZE_EXAMPLES}")
    if size < 0:
        raise ValueError(f"must not be negative; {_SIZE_EXAMPLES}")
    return size


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str | int | float) else value


def _size(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return parse_size(value) if isinstance(value, str | int) else value


#: A float number of seconds that also accepts duration strings.
Duration = Annotated[float, BeforeValidator(_duration)]
#: An int number of bytes that also accepts size strings.
Size = Annotated[int, BeforeValidator(_size)]
