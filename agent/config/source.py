"""Reading a configuration file: YAML or JSON, with line/column in every parse error.

The YAML dialect is YAML 1.2-like where 1.1 surprises people: only ``true``/``false`` are
booleans (``audit_log: off`` stays the string ``off``) and dates stay strings
(``anthropic-version: 2023-06-01``). Duplicate keys are errors. Parse errors name the line and
column but never quote the file's text, which may hold a secret.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, ConfigProblem

__all__ = ["parse_document", "read_document"]

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BOOL = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, no implicit dates, and duplicate-key detection."""

    duplicates: list[str]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                mark = key_node.start_mark
                self.duplicates.append(
                    f"line {mark.line + 1}, column {mark.column + 1}: key '{key}' appears twice "
                    "in the same mapping; keep one"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_TIMESTAMP, _BOOL)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _fail(source: str, message: str) -> ConfigError:
    return ConfigError([ConfigProblem("", message)], source=source)


def _yaml(text: str, source: str) -> Any:
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise _fail(source, f"{where}not valid YAML: {what or 'syntax error'}") from None
    except yaml.YAMLError as exc:
        raise _fail(source, f"not valid YAML: {type(exc).__name__}") from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError([ConfigProblem("", text) for text in loader.duplicates], source=source)
    return data


def _json(text: str, source: str) -> Any:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                duplicates.append(f"key '{key}' appears twice in the same object; keep one")
            result[key] = value
        return result

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise _fail(
            source, f"line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"
        ) from None
    if duplicates:
        raise ConfigError([ConfigProblem("", text) for text in duplicates], source=source)
    return data


def parse_document(text: str, *, fmt: str = "auto", source: str = "") -> Any:
    """Parse ``text`` as ``json``, ``yaml`` or ``auto`` (YAML, which also reads JSON)."""
    if fmt == "json":
        return _json(text, source)
    return _yaml(text, source)


def read_document(path: Path) -> Any:
    """Read and parse a configuration file; the format follows the extension (else YAML)."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _fail(source, f"configuration file {path} does not exist") from None
    except IsADirectoryError:
        raise _fail(source, f"{path} is a directory, not a configuration file") from None
    except PermissionError:
        raise _fail(
            source, f"configuration file {path} is not readable (permission denied)"
        ) from None
    except OSError as exc:
        raise _fail(source, f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(source, f"{path} is not UTF-8 text (byte {exc.start})") from None
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    return parse_document(text, fmt=fmt, source=source)
