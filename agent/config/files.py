"""File-backed values: ``${file:}`` secrets re-read when the file changes, and the stat poller.

Kubernetes updates a mounted Secret by writing a new timestamped directory and swapping the
``..data`` symlink to it, so the path we were given keeps its name while the file behind it is
replaced. ``os.stat`` follows the symlinks, so a changed (device, inode, mtime, size) of the
resolved file is the cheap signal: one ``stat`` per file every ``interval`` seconds in a
background task, and a read only when it changed -- never a read per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.config.references import MAX_FILE_BYTES, Resolver
from agent.config.secret import Secret

__all__ = ["FileWatcher", "read_secret", "read_text_file", "secret_files"]

_log = logging.getLogger("agent.config")

_FILE_REF = re.compile(r"\$\{\s*file\s*:([^{}]*)\}")

_Signature = tuple[tuple[int, int, int, int] | None, ...]


def secret_files(secret: Secret) -> tuple[Path, ...]:
    """The files a secret's value was read from (empty when none, or not re-readable)."""
    source = secret.source
    if source.startswith("file:"):
        return (Path(source.removeprefix("file:")),)
    if source.startswith("template:"):
        paths = tuple(Path(raw.strip()) for raw in _FILE_REF.findall(source))
        # Relative paths were relative to the config file, which a Secret does not remember.
        if paths and all(p.is_absolute() for p in paths):
            return paths
    return ()


def read_secret(secret: Secret) -> str:
    """The secret's current value: re-read from its file(s) if it came from files.

    Raises OSError or ValueError with a message naming the file, never its content.
    """
    source = secret.source
    if source.startswith("file:"):
        return read_text_file(Path(source.removeprefix("file:")))
    if source.startswith("template:") and secret_files(secret):
        resolver = Resolver(env=os.environ, base_dir=Path("/"))
        value = resolver.resolve(source.removeprefix("template:"))
        if resolver.problems:
            raise ValueError(resolver.problems[0][1])
        return str(value)
    return secret.get()


def read_text_file(path: Path) -> str:
    """A small UTF-8 file, stripped; errors name the file and never repeat its content."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise OSError(f"file {path} does not exist") from None
    except PermissionError:
        raise OSError(f"file {path} is not readable by the agent (permission denied)") from None
    except OSError as exc:
        raise OSError(f"file {path} cannot be read ({type(exc).__name__})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"file {path} is larger than 1 MiB")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"file {path} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"file {path} is empty")
    return text


def _signature(paths: Sequence[Path]) -> _Signature:
    out: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)  # follows the ..data symlink to the file behind it
        except OSError:
            out.append(None)
        else:
            out.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class FileWatcher:
    """Calls ``on_change`` (in the event loop) whenever one of ``paths`` is replaced or edited."""

    def __init__(
        self, paths: Sequence[Path], on_change: Callable[[], None], *, interval: float = 1.0
    ) -> None:
        self.paths = tuple(paths)
        self._on_change = on_change
        self._interval = interval
        self._last = _signature(self.paths)
        self._task: asyncio.Task[None] | None = None

    def start(self, name: str) -> None:
        if self._task is None and self.paths:
            self._task = asyncio.create_task(self._run(), name=f"watch:{name}")

    def check(self) -> bool:
        """Stat now; call ``on_change`` and return True if something changed."""
        current = _signature(self.paths)
        if current == self._last:
            return False
        self._last = current
        self._on_change()
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.check()
            except Exception as exc:  # never let a bad reload stop the watching
                _log.warning("reloading a secret file failed (%s)", type(exc).__name__)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
