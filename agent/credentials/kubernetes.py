"""Kubernetes API: the pod's projected service-account token, re-read as the kubelet rotates it.

The kubelet rewrites the token past 80 % of its lifetime (an atomic ``..data`` symlink swap), and
the old token stays valid until it expires, so polling the file every second or two is plenty.
The token's ``exp`` (read without verification: the API server verifies it) is shown as the
credential's expiry; a token past it means the kubelet stopped rotating it, reported as failed.
A 401 makes the next call stat the file at once (the kubelet may have just rotated it).

The cluster CA (``ca_file``) is the integration's transport CA: see ``transport_ca_file``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import jwt

from agent.config.files import read_text_file
from agent.credentials.static import StaticHeader

__all__ = ["KubernetesToken"]


def _expiry(token: str) -> float | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class KubernetesToken(StaticHeader):
    """``Authorization: Bearer <projected token>`` from ``token_file``."""

    can_refresh = True

    def __init__(self, *, token_file: str, integration: str, poll_interval: float = 1.0) -> None:
        path = Path(token_file)
        token = read_text_file(path)
        super().__init__(
            "authorization",
            f"Bearer {token}",
            render=lambda: f"Bearer {read_text_file(path)}",
            watch=(path,),
            integration=integration,
            poll_interval=poll_interval,
        )
        self._path = path
        self._exp = _expiry(token)
        self._recheck = False

    async def apply(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        if self._recheck:  # only after a 401: one stat, and a read if the file changed
            self._recheck = False
            self.reload_now()
        await super().apply(method, url, headers, body)

    def invalidate(self) -> None:
        self._recheck = True

    def _changed(self) -> None:
        self._exp = _expiry(self._value.removeprefix("Bearer "))
        super()._changed()

    def state(self) -> str:
        if self._exp is not None and self._exp <= time.time():
            return f"failed: the token in {self._path} expired (is the kubelet rotating it?)"
        return "valid"

    def expires_at(self) -> datetime | None:
        return None if self._exp is None else datetime.fromtimestamp(self._exp, UTC)
