"""The seed document's integration format, mapped onto the configuration's own keys.

The seed sample writes integrations as::

    openai:  {apiKey: ..., timeout: 30000}      # timeout in MILLISECONDS
    slack:   {botToken: ..., webhookUrl: ...}
    teams:   {webhookUrl: ...}
    custom:  {apiKey: ..., baseUrl: https://...}

An entry with any of ``apiKey``, ``baseUrl``, ``botToken`` or ``webhookUrl`` is a seed entry. Its
``preset``/``type``/``provider`` key, else its name, picks the preset; ``apiKey``/``botToken``
fill that preset's credential (Discord's gets the ``Bot`` prefix from the preset); ``baseUrl`` is
``base_url``; ``webhookUrl`` is ``webhook_url`` -- of the entry itself, or of an extra
``<name>_webhook`` integration when the entry also has a token. Without a known preset the key is
sent as a bearer token. Other keys pass through as configuration keys.

``enabled: false`` drops an entry (in either format) before anything in it is resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .presets import PRESETS, resolve_preset_name
from .references import DocPath

__all__ = ["SEED_KEYS", "Normalized", "normalize_integrations"]

#: Keys that mark an entry as written in the seed's format.
SEED_KEYS = frozenset({"apiKey", "baseUrl", "botToken", "webhookUrl"})
_PRESET_KEYS = ("preset", "type", "provider")


@dataclass
class Normalized:
    """Integrations in configuration keys, with where each moved key came from."""

    integrations: dict[str, Any] = field(default_factory=dict)
    #: final path -> the user's path, for keys the seed format spells differently
    origin: dict[DocPath, DocPath] = field(default_factory=dict)
    problems: list[tuple[DocPath, str]] = field(default_factory=list)


def normalize_integrations(raw: Mapping[str, Any]) -> Normalized:
    """Drop disabled entries and rewrite seed entries; other entries are kept as they are."""
    out = Normalized()
    hooks: dict[str, str] = {}  # extra webhook integration -> the seed entry that defines it
    for name, entry in raw.items():
        path: DocPath = ("integrations", str(name))
        if isinstance(entry, Mapping) and "enabled" in entry:
            enabled = entry["enabled"]
            if not isinstance(enabled, bool):
                out.problems.append(((*path, "enabled"), "must be true or false"))
                continue
            if not enabled:
                continue
            entry = {key: value for key, value in entry.items() if key != "enabled"}
        if isinstance(entry, Mapping) and SEED_KEYS & entry.keys():
            _seed_entry(str(name), entry, out, hooks)
        else:
            _add(out, hooks, str(name), entry)
    return out


def _add(out: Normalized, hooks: dict[str, str], name: str, entry: Any) -> None:
    if name in out.integrations:
        owner = hooks.get(name, name)
        out.problems.append(
            (
                ("integrations", owner, "webhookUrl"),
                f"would define '{name}', which the file defines too; rename one of them",
            )
        )
    else:
        out.integrations[name] = entry


def _seed_entry(
    name: str, entry: Mapping[str, Any], out: Normalized, hooks: dict[str, str]
) -> None:
    path: DocPath = ("integrations", name)
    chooser = next((key for key in _PRESET_KEYS if isinstance(entry.get(key), str)), None)
    wanted = entry[chooser] if chooser else name
    preset = PRESETS.get(resolve_preset_name(wanted) or "")
    result: dict[str, Any] = {
        key: value
        for key, value in entry.items()
        if key not in SEED_KEYS and key not in _PRESET_KEYS and key != "timeout"
    }
    if chooser and preset is None:
        result["preset"] = wanted  # unknown: validation reports it with a suggestion
        out.origin[(*path, "preset")] = (*path, chooser)

    token_key = next((key for key in ("botToken", "apiKey") if key in entry), None)
    if "botToken" in entry and "apiKey" in entry:
        out.problems.append(((*path, "apiKey"), "give apiKey or botToken, not both"))
    if token_key is not None and preset is not None and preset.seed_field is None:
        out.problems.append(
            (
                (*path, token_key),
                f"preset '{preset.name}' takes no {token_key}; configure its 'auth' instead",
            )
        )
        token_key = None
    webhook = entry.get("webhookUrl")
    if token_key is None and webhook is not None and preset is not None and preset.webhook:
        preset = PRESETS[preset.webhook]  # `slack: {webhookUrl}` is the Slack webhook
    if preset is not None:
        result["preset"] = preset.name

    if token_key is not None:
        field_name = preset.seed_field if preset is not None else "token"
        if preset is None:
            result["auth"] = {"type": "bearer", "token": entry[token_key]}
        else:
            result["auth"] = {field_name: entry[token_key]}
        out.origin[(*path, "auth", str(field_name))] = (*path, token_key)
        out.origin[(*path, "auth")] = (*path, token_key)
    if "baseUrl" in entry:
        result["base_url"] = entry["baseUrl"]
        out.origin[(*path, "base_url")] = (*path, "baseUrl")
    if "timeout" in entry:
        result["timeout"] = _milliseconds(entry["timeout"])

    if webhook is not None and token_key is not None:
        extra = f"{name}_webhook"
        hook: dict[str, Any] = {"webhook_url": webhook}
        if preset is not None and preset.webhook:
            hook["preset"] = preset.webhook
        if extra not in out.integrations:
            hooks[extra] = name
            out.origin[("integrations", extra, "webhook_url")] = (*path, "webhookUrl")
        _add(out, hooks, extra, hook)
    elif webhook is not None:
        result["webhook_url"] = webhook
        out.origin[(*path, "webhook_url")] = (*path, "webhookUrl")
    _add(out, hooks, name, result)


def _milliseconds(value: Any) -> Any:
    """The seed's numeric timeout is in milliseconds; duration strings pass through."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value / 1000
    return value
