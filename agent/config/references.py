"""``${VAR}``, ``${env:VAR}`` and ``${file:/path}`` references inside configuration strings.

References are resolved once, over the whole parsed document, before validation. A reference
that cannot be resolved becomes a problem located at its key; the value is then marked as failed
so that validation does not report the same key a second time. Messages never include a
resolved value. ``$${`` writes a literal ``${``.

Resolved strings are returned as ``Resolved`` (a ``str`` subclass) carrying their ``source``, so
that a ``Secret`` can remember where its value came from; pydantic turns them back into plain
``str`` everywhere else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MAX_FILE_BYTES", "DocPath", "Resolved", "Resolver"]

#: Files referenced with ``${file:}`` hold a token or a key, never megabytes.
MAX_FILE_BYTES = 1024 * 1024

#: A location inside the document: mapping keys and list indexes.
DocPath = tuple[str | int, ...]

_TOKEN = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Resolved(str):
    """A string whose references were resolved; ``source`` says where the value came from."""

    source: str = "literal"
    failed: bool = False

    @classmethod
    def make(cls, value: str, source: str, *, failed: bool = False) -> Resolved:
        """Build one (``str`` subclasses take their value in ``__new__`` only)."""
        out = cls(value)
        out.source = source
        out.failed = failed
        return out


@dataclass
class Resolver:
    """Resolves every reference of a parsed document; collects problems and failed paths."""

    env: Mapping[str, str]
    base_dir: Path
    problems: list[tuple[DocPath, str]] = field(default_factory=list)
    failed: set[DocPath] = field(default_factory=set)

    def resolve(self, data: Any, path: DocPath = ()) -> Any:
        """A copy of ``data`` with every string resolved (containers rebuilt, scalars kept)."""
        if isinstance(data, Resolved):
            return data
        if isinstance(data, str):
            return self._string(data, path)
        if isinstance(data, Mapping):
            return {key: self.resolve(value, (*path, str(key))) for key, value in data.items()}
        if isinstance(data, list | tuple):
            return [self.resolve(value, (*path, index)) for index, value in enumerate(data)]
        return data

    def _string(self, text: str, path: DocPath) -> Resolved:
        if "$" not in text:
            return Resolved.make(text, "literal")
        pieces: list[str] = []
        sources: list[str] = []
        ok = True
        position = 0
        for match in _TOKEN.finditer(text):
            pieces.append(text[position : match.start()])
            position = match.end()
            if match.group(0) == "$${":
                pieces.append("${")
                continue
            value, source = self._reference(match.group(1), path)
            if value is None:
                ok = False
            else:
                pieces.append(value)
                sources.append(source)
        rest = text[position:]
        if "${" in rest:
            self._problem(
                path,
                "has an unterminated '${' reference; close it with '}' "
                "(write '$${' for a literal '${')",
            )
            ok = False
        pieces.append(rest)
        if not ok:
            self.failed.add(path)
            return Resolved.make("", "failed", failed=True)
        if not sources:
            source = "literal"
        elif len(sources) == 1 and _TOKEN.fullmatch(text):
            source = sources[0]
        else:
            source = f"template:{text}"
        return Resolved.make("".join(pieces), source)

    def _reference(self, inner: str, path: DocPath) -> tuple[str | None, str]:
        kind, sep, rest = inner.partition(":")
        if not sep:
            kind, rest = "env", inner
        kind = kind.strip()
        rest = rest.strip()
        if kind == "env":
            return self._env(rest, path), f"env:{rest}"
        if kind == "file":
            resolved = self._path(rest)
            return self._file(rest, resolved, path), f"file:{resolved}"
        self._problem(
            path,
            f"unknown reference '${{{kind}:...}}'; use ${{VAR}}, ${{env:VAR}} or ${{file:/path}} "
            "(write '$${' for a literal '${')",
        )
        return None, ""

    def _env(self, name: str, path: DocPath) -> str | None:
        if not _NAME.fullmatch(name):
            self._problem(
                path,
                f"'${{{name}}}' is not a valid environment variable reference; names are letters, "
                "digits and '_' (write '$${' for a literal '${')",
            )
            return None
        value = self.env.get(name)
        if value is None:
            self._problem(
                path,
                f"environment variable {name} is not set; export it or write the value "
                "in the file (or use ${file:/path})",
            )
        return value

    def _path(self, raw: str) -> Path:
        candidate = Path(os.path.expanduser(raw))
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def _file(self, raw: str, file: Path, path: DocPath) -> str | None:
        if not raw:
            self._problem(path, "'${file:}' needs a path, e.g. ${file:/run/secrets/token}")
            return None
        try:
            with file.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            reason = "does not exist"
        except IsADirectoryError:
            reason = "is a directory, not a file"
        except PermissionError:
            reason = "is not readable by the agent (permission denied)"
        except OSError as exc:
            reason = f"cannot be read ({exc.strerror or type(exc).__name__})"
        else:
            if len(data) > MAX_FILE_BYTES:
                reason = "is larger than 1 MiB; a referenced file holds one value"
            else:
                try:
                    return data.decode("utf-8").strip()
                except UnicodeDecodeError:
                    reason = "is not UTF-8 text"
        self._problem(path, f"file {file} (from ${{file:{raw}}}) {reason}")
        return None

    def _problem(self, path: DocPath, message: str) -> None:
        self.problems.append((path, message))
