"""Pydantic's validation errors, turned into ``(path, message)`` problems people can act on.

Paths are the user's keys: the discriminator tag pydantic inserts for ``auth`` is dropped, and
errors raised with ``field_error`` are moved to the field they are about. Messages never include
the input value. Unknown keys suggest the closest valid key.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .auth import AUTH_MODELS
from .base import FIELD_ERROR
from .references import DocPath

__all__ = ["format_path", "translate", "unknown_key"]

_FRIENDLY_TYPES: dict[type, str] = {
    bool: "true/false",
    Mapping: "a mapping",
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    type(None): "nothing (null)",
}


def format_path(path: Sequence[str | int]) -> str:
    """``integrations.openai.timeout``, ``callers[0].token``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def unknown_key(key: str, valid: Sequence[str]) -> str:
    """The message for an unknown key, with the closest valid key when there is one."""
    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    return f"unknown key '{key}'; valid keys: {', '.join(valid)}"


def translate(
    exc: ValidationError, model: type[BaseModel], raw: Any, prefix: DocPath
) -> list[tuple[DocPath, str, str]]:
    """``(path, message, error type)`` for each error of ``model`` validating ``raw``."""
    out: list[tuple[DocPath, str, str]] = []
    for error in exc.errors(include_url=False):
        loc, _ = _walk(model, error["loc"], raw)
        kind = error["type"]
        if kind == FIELD_ERROR:
            ctx = error.get("ctx") or {}
            out.append(((*prefix, *loc, str(ctx["field"])), str(ctx["message"]), kind))
            continue
        if kind == "extra_forbidden" and loc:
            _, valid = _walk(model, loc[:-1], raw)
            message = unknown_key(str(loc[-1]), valid) if valid else f"unknown key '{loc[-1]}'"
            out.append(((*prefix, *loc), message, kind))
            continue
        out.append(((*prefix, *loc), _message(error), kind))
    return out


def _members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [member for member in get_args(annotation) if member is not type(None)]
    return [annotation]


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def _tag(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("type")
    return None if field is None else field.default


def _walk(model: type[BaseModel], loc: Sequence[int | str], raw: Any) -> tuple[DocPath, list[str]]:
    """The user's path for a pydantic ``loc``, and the keys valid where it ends.

    Pydantic puts the tag of a discriminated union (``auth.<bearer>.token``) and ``[key]``
    markers in its locations; neither is a key of the user's file.
    """
    current: Any = model
    data = raw
    out: list[str | int] = []
    for part in loc:
        if part == "[key]":
            continue
        models = _models(current)
        if len(models) > 1:  # the discriminated union's tag
            current = next((m for m in models if _tag(m) == part), None)
            continue
        if len(models) == 1:
            field = models[0].model_fields.get(str(part))
            current = None if field is None else field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) in (tuple, list):
            current = get_args(current)[0]
        else:
            current = None
        out.append(part)
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list | tuple) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            data = None
    models = _models(current)
    if len(models) > 1 and isinstance(data, Mapping):
        models = [m for m in models if _tag(m) == data.get("type")]
    valid = list(models[0].model_fields) if len(models) == 1 else []
    return tuple(out), valid


def _type_name(value: Any) -> str:
    for kind, name in _FRIENDLY_TYPES.items():  # bool before int: isinstance(True, int)
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    got = _type_name(error.get("input"))
    simple = {
        "missing": "is required",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "int_type": f"must be a whole number, not {got}",
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_type": f"must be a number, not {got}",
        "float_parsing": "must be a number",
        "finite_number": "must be a finite number",
        "string_type": f"must be a string, not {got}",
        "string_too_short": "must not be empty",
        "dict_type": f"must be a mapping of keys to values, not {got}",
        "model_type": f"must be a mapping of keys to values, not {got}",
        "model_attributes_type": f"must be a mapping of keys to values, not {got}",
        "list_type": f"must be a list, e.g. [a, b], not {got}",
        "tuple_type": f"must be a list, e.g. [a, b], not {got}",
    }
    if kind in simple:
        return simple[kind]
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt')}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than":
        return f"must be less than {ctx.get('lt')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "union_tag_invalid":
        tags = [tag.strip("' ") for tag in str(ctx.get("expected_tags", "")).split(",")]
        close = difflib.get_close_matches(str(ctx.get("tag", "")), tags, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown type '{ctx.get('tag')}'; {hint}use one of: {', '.join(tags)}"
    if kind == "union_tag_not_found":
        return f"needs a 'type' key, one of: {', '.join(AUTH_MODELS)}"
    return str(error["msg"])
