"""Loading a configuration: parse, rewrite seed entries, apply presets, resolve references,
validate every section, cross-check -- and report every problem at once.

Each section (and each integration and caller) is validated on its own, so that one bad
integration does not hide the problems of the others, and cross-checks still run on the parts
that are valid. Problems are located by the user's own paths (``integrations.slack.webhookUrl``
for a seed key). The order of work::

    document -> seed rewrite -> presets -> ${...} references -> models -> cross-checks -> Config
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, ConfigProblem
from .checks import IntegrationRefs, cross_check
from .merge import apply_preset
from .models import (
    CallerConfig,
    Config,
    IntegrationConfig,
    ListenConfig,
    RedisConfig,
    ServerConfig,
    TelemetryConfig,
)
from .problems import format_path, translate, unknown_key
from .references import DocPath, Resolver
from .seed import normalize_integrations
from .source import read_document

__all__ = ["load_config", "parse_config"]

_M = TypeVar("_M", bound=BaseModel)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load and validate a YAML or JSON configuration file.

    ``env`` replaces ``os.environ`` for ``${VAR}`` references when given. Relative
    ``${file:...}`` paths are relative to the configuration file. Raises ``ConfigError`` listing
    every problem, each located by its dotted path in the file.
    """
    file = Path(path)
    data = read_document(file)
    return _Build(env, source=str(file), base_dir=file.absolute().parent).run(data)


def parse_config(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None, *, source: str = ""
) -> Config:
    """Validate already-parsed configuration data (same rules as ``load_config``).

    Relative ``${file:...}`` paths are relative to the working directory.
    """
    return _Build(env, source=source, base_dir=Path.cwd()).run(data)


class _Build:
    """One run of the loader; accumulates problems instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str] | None, *, source: str, base_dir: Path) -> None:
        self.env = os.environ if env is None else env
        self.source = source
        self.base_dir = base_dir
        self.problems: list[tuple[DocPath, str]] = []
        self.failed: set[DocPath] = set()
        self.origin: dict[DocPath, DocPath] = {}

    def run(self, data: Any) -> Config:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                [
                    ConfigProblem(
                        "",
                        "the configuration must be a mapping with keys such as listen, callers, "
                        "redis, integrations and telemetry",
                    )
                ],
                source=self.source,
            )
        doc = self._prepare(data)
        resolver = Resolver(self.env, self.base_dir)
        resolved = resolver.resolve(doc)
        self.problems.extend(resolver.problems)
        self.failed = resolver.failed

        listen = self._section("listen", ListenConfig, resolved)
        server = self._section("server", ServerConfig, resolved)
        telemetry = self._section("telemetry", TelemetryConfig, resolved)
        callers = self._callers(resolved.get("callers"))
        redis = self._redis(resolved.get("redis"))
        integrations: dict[str, IntegrationConfig | None] = {
            name: self._validate(IntegrationConfig, entry, ("integrations", name))
            for name, entry in resolved["integrations"].items()
        }
        refs = {
            name: IntegrationRefs.of(integration)
            if integration is not None
            else IntegrationRefs.of_raw(resolved["integrations"][name])
            for name, integration in integrations.items()
        }
        for path, message in cross_check(
            callers=callers,
            integrations=refs,
            names=set(integrations),
            has_redis=redis is not None,
        ):
            self.problems.append((path, message))
        self._raise_if_problems()
        return Config(
            listen=listen,
            server=server,
            callers=tuple(caller for caller in callers if caller is not None),
            redis=redis,
            integrations={
                name: integration
                for name, integration in integrations.items()
                if integration is not None
            },
            telemetry=telemetry,
        )

    # -- steps ---------------------------------------------------------------------------

    def _prepare(self, data: Mapping[Any, Any]) -> dict[str, Any]:
        """Top-level keys checked, seed entries rewritten and presets applied."""
        doc: dict[str, Any] = {}
        valid = list(Config.model_fields)
        for key, value in data.items():
            if key not in Config.model_fields:
                self.problems.append(((str(key),), unknown_key(str(key), valid)))
            elif value is not None:
                doc[key] = value
        raw = doc.get("integrations", {})
        if not isinstance(raw, Mapping):
            self.problems.append(
                (("integrations",), "must be a mapping of integration names to their settings")
            )
            raw = {}
        normalized = normalize_integrations(raw)
        self.problems.extend(normalized.problems)
        self.origin = normalized.origin
        doc["integrations"] = {
            name: apply_preset(entry) if isinstance(entry, Mapping) else entry
            for name, entry in normalized.integrations.items()
        }
        return doc

    def _section(self, name: str, model: type[_M], doc: Mapping[str, Any]) -> _M:
        validated = self._validate(model, doc.get(name, {}), (name,))
        return validated if validated is not None else model()

    def _callers(self, raw: Any) -> list[CallerConfig | None]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problems.append((("callers",), "must be a list of {name, token, allow}"))
            return []
        return [
            self._validate(CallerConfig, entry, ("callers", index))
            for index, entry in enumerate(raw)
        ]

    def _redis(self, raw: Any) -> RedisConfig | None:
        return None if raw is None else self._validate(RedisConfig, raw, ("redis",))

    def _validate(self, model: type[_M], raw: Any, path: DocPath) -> _M | None:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            for error_path, message, kind in translate(exc, model, raw, path):
                if not self._masked(error_path, kind):
                    self.problems.append((error_path, message))
            return None

    def _masked(self, path: DocPath, kind: str) -> bool:
        """Whether an error only repeats a reference that already failed."""
        for failed in self.failed:
            if path[: len(failed)] == failed:
                return True
            if kind.startswith("union_tag") and failed[: len(path)] == path:
                return True
        return False

    # -- reporting -------------------------------------------------------------------------

    def _user_path(self, path: DocPath) -> DocPath:
        for cut in range(len(path), 0, -1):
            mapped = self.origin.get(path[:cut])
            if mapped is not None:
                return (*mapped, *path[cut:])
        return path

    def _raise_if_problems(self) -> None:
        if not self.problems:
            return
        seen: set[tuple[str, str]] = set()
        out: list[ConfigProblem] = []
        for path, message in self.problems:
            key = (format_path(self._user_path(path)), message)
            if key not in seen:
                seen.add(key)
                out.append(ConfigProblem(*key))
        raise ConfigError(out, source=self.source)
