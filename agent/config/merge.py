"""Merging a preset under a user's integration: the user's keys win, mappings merge deeply.

Two exceptions keep the result coherent: an ``auth`` of a different ``type`` replaces the
preset's auth as a whole (fields of one scheme mean nothing to another), and keys that exclude
each other (``requests_per_second``/``requests_per_minute``, ``base_url``/``webhook_url``) drop
the preset's alternative when the user gives one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .presets import PRESETS, resolve_preset_name

__all__ = ["apply_preset", "deep_merge"]

_EXCLUSIVE = (
    frozenset({"requests_per_second", "requests_per_minute"}),
    frozenset({"base_url", "webhook_url"}),
)


def _thaw(value: Any) -> Any:
    """Plain dicts and lists from frozen preset data (and a copy of user data)."""
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(item) for item in value]
    return value


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` on top of ``base``; neither is modified."""
    result: dict[str, Any] = {key: _thaw(value) for key, value in base.items()}
    for group in _EXCLUSIVE:
        if group & overlay.keys():
            for key in group - overlay.keys():
                result.pop(key, None)
    for key, value in overlay.items():
        current = result.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            if key == "auth" and value.get("type") not in (None, current.get("type")):
                result[key] = _thaw(value)
            else:
                result[key] = deep_merge(current, value)
        else:
            result[key] = _thaw(value)
    return result


def apply_preset(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The integration ``entry`` with its ``preset:`` merged in (unknown presets left as they are,
    for validation to report with a suggestion)."""
    name = entry.get("preset")
    canonical = resolve_preset_name(name) if isinstance(name, str) else None
    if canonical is None:
        return _thaw(entry)  # type: ignore[no-any-return]
    merged = deep_merge(PRESETS[canonical].integration, entry)
    merged["preset"] = canonical
    return merged
