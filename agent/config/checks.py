"""Checks that span sections of the configuration.

They run on whatever parts validated, so that one run of the loader reports every problem: an
integration that failed its own validation still counts as configured, and its references are
read from its raw data where they are well-typed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .references import DocPath

if TYPE_CHECKING:
    from .models import CallerConfig, IntegrationConfig

__all__ = ["IntegrationRefs", "cross_check"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True)
class IntegrationRefs:
    """What an integration refers to elsewhere in the configuration."""

    fallback: tuple[str, ...] = ()
    scope: str = "local"
    per_caller: tuple[str, ...] = ()

    @classmethod
    def of(cls, integration: IntegrationConfig) -> IntegrationRefs:
        """From a validated integration."""
        limit = integration.rate_limit
        return cls(integration.fallback, limit.scope, tuple(limit.per_caller))

    @classmethod
    def of_raw(cls, raw: Any) -> IntegrationRefs:
        """Best effort from an integration that failed validation: well-typed parts only."""
        if not isinstance(raw, Mapping):
            return cls()
        fallback = raw.get("fallback")
        limit = raw.get("rate_limit")
        limit = limit if isinstance(limit, Mapping) else {}
        per_caller = limit.get("per_caller")
        return cls(
            fallback=tuple(x for x in fallback if isinstance(x, str))
            if isinstance(fallback, list)
            else (),
            scope=str(limit.get("scope", "local")),
            per_caller=tuple(str(x) for x in per_caller) if isinstance(per_caller, Mapping) else (),
        )


def cross_check(
    *,
    callers: Iterable[CallerConfig | None],
    integrations: Mapping[str, IntegrationRefs],
    names: set[str],
    has_redis: bool,
) -> list[tuple[DocPath, str]]:
    """Problems as ``(path, message)`` pairs, in file order; ``names`` = all integrations."""
    problems: list[tuple[DocPath, str]] = []
    known = ", ".join(sorted(names)) or "none configured"
    for name in integrations:
        if not _NAME.fullmatch(name):
            problems.append(
                (
                    ("integrations", name),
                    "an integration name must start with a letter or digit and use only "
                    "letters, digits, '_', '-' and '.'",
                )
            )

    caller_list = list(callers)
    caller_names = {caller.name for caller in caller_list if caller is not None}
    seen_names: dict[str, int] = {}
    seen_tokens: dict[str, int] = {}
    for index, caller in enumerate(caller_list):
        if caller is None:
            continue
        if caller.name in seen_names:
            problems.append(
                (
                    ("callers", index, "name"),
                    f"'{caller.name}' is already the name of callers[{seen_names[caller.name]}]",
                )
            )
        seen_names.setdefault(caller.name, index)
        token = caller.token.get()
        if token in seen_tokens:
            problems.append(
                (
                    ("callers", index, "token"),
                    f"is the same token as callers[{seen_tokens[token]}]; every caller needs "
                    "its own token",
                )
            )
        seen_tokens.setdefault(token, index)
        for position, allowed in enumerate(caller.allow):
            if allowed != "*" and allowed not in names:
                problems.append(
                    (
                        ("callers", index, "allow", position),
                        f"no integration named '{allowed}' (configured: {known}; '*' = all)",
                    )
                )

    for name, refs in integrations.items():
        base: DocPath = ("integrations", name)
        for position, target in enumerate(refs.fallback):
            if target == name:
                problems.append(
                    ((*base, "fallback", position), "an integration cannot fall back to itself")
                )
            elif target not in names:
                problems.append(
                    (
                        (*base, "fallback", position),
                        f"no integration named '{target}' (configured: {known})",
                    )
                )
        if refs.scope == "global" and not has_redis:
            problems.append(
                (
                    (*base, "rate_limit", "scope"),
                    "'global' needs a shared Redis: add a top-level redis: {url: "
                    "redis://host:6379/0}, or use scope: local",
                )
            )
        for caller_name in refs.per_caller:
            if caller_name not in caller_names:
                configured = ", ".join(sorted(caller_names)) or "no callers are configured"
                problems.append(
                    (
                        (*base, "rate_limit", "per_caller", caller_name),
                        f"no caller named '{caller_name}' (callers: {configured})",
                    )
                )
    return problems
