"""File-backed credentials: Kubernetes-style symlink swaps picked up by a cheap stat poll."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agent.config.files as files_module
from agent.config import KubernetesAuth, parse_config
from agent.credentials import build_provider, transport_ca_file
from agent.credentials.base import CredentialProvider
from agent.errors import ConfigError
from tests.support.cred_helpers import cluster_token, k8s_atomic_write

POLL = 0.05


def auth_from(auth: dict[str, Any]) -> Any:
    config = parse_config(
        {"integrations": {"svc": {"base_url": "https://api.example.com", "auth": auth}}}
    )
    return config.integrations["svc"].auth


async def started(made: list[CredentialProvider], auth: Any) -> CredentialProvider:
    provider = build_provider(auth, path="integrations.svc.auth", poll_interval=POLL)
    made.append(provider)
    await provider.start()
    return provider


async def header_of(provider: CredentialProvider, name: str = "authorization") -> str:
    headers: dict[str, str] = {}
    await provider.apply("GET", "https://api.example.com/x", headers, b"")
    return headers[name]


async def eventually(get: Callable[[], Any], expected: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := await get()) != expected:
        assert time.monotonic() < deadline, f"still {value!r}"
        await asyncio.sleep(0.01)


async def test_bearer_file_swapped_like_a_kubernetes_secret_is_picked_up(
    tmp_path: Path, providers: list[CredentialProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    k8s_atomic_write(tmp_path, {"token": "token-v1-AAAA"}, 1)
    auth = auth_from({"type": "bearer", "token": f"${{file:{tmp_path}/token}}"})
    provider = await started(providers, auth)
    assert await header_of(provider) == "Bearer token-v1-AAAA"

    reads = 0
    real = files_module.read_text_file

    def counting(path: Path) -> str:
        nonlocal reads
        reads += 1
        return real(path)

    monkeypatch.setattr(files_module, "read_text_file", counting)
    for _ in range(1000):
        await header_of(provider)
    await asyncio.sleep(POLL * 4)
    assert reads == 0  # no read per call, nor per poll while nothing changed

    k8s_atomic_write(tmp_path, {"token": "token-v2-BBBB"}, 2)
    await eventually(lambda: header_of(provider), "Bearer token-v2-BBBB")
    assert reads == 1
    assert provider.state() == "static"
    assert not provider.can_refresh


async def test_header_with_prefix_and_basic_password_follow_their_files(
    tmp_path: Path, providers: list[CredentialProvider]
) -> None:
    k8s_atomic_write(tmp_path, {"bot": "bot-one", "password": "pw-one"}, 1)
    header = await started(
        providers,
        auth_from(
            {
                "type": "header",
                "header": "Authorization",
                "prefix": "Bot ",
                "value": f"${{file:{tmp_path}/bot}}",
            }
        ),
    )
    basic = await started(
        providers,
        auth_from(
            {"type": "basic", "username": "me", "password": f"${{file:{tmp_path}/password}}"}
        ),
    )
    assert await header_of(header) == "Bot bot-one"
    first_basic = await header_of(basic)
    k8s_atomic_write(tmp_path, {"bot": "bot-two", "password": "pw-two"}, 2)
    await eventually(lambda: header_of(header), "Bot bot-two")
    import base64

    expected = "Basic " + base64.b64encode(b"me:pw-two").decode()
    await eventually(lambda: header_of(basic), expected)
    assert first_basic != expected


async def test_a_file_missing_mid_rotation_keeps_the_last_good_value(
    tmp_path: Path, providers: list[CredentialProvider], caplog: pytest.LogCaptureFixture
) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text("key-one-1234")
    provider = await started(
        providers,
        auth_from({"type": "header", "header": "x-api-key", "value": f"${{file:{secret_file}}}"}),
    )
    assert provider.secret_header == "x-api-key"
    caplog.set_level(logging.WARNING, logger="agent.credentials")
    secret_file.unlink()
    await asyncio.sleep(POLL * 6)
    assert await header_of(provider, "x-api-key") == "key-one-1234"
    secret_file.write_text("")  # a writer that truncates first
    await asyncio.sleep(POLL * 6)
    assert await header_of(provider, "x-api-key") == "key-one-1234"
    secret_file.write_text("key-two-5678\n")
    await eventually(lambda: header_of(provider, "x-api-key"), "key-two-5678")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "could not be read" in w]) == 1
    assert not any("key-one" in w or "key-two" in w for w in warnings)


async def test_kubernetes_projected_token_rotation_and_expiry(
    tmp_path: Path, providers: list[CredentialProvider]
) -> None:
    first = cluster_token("https://kubernetes.default.svc", lifetime=600)
    k8s_atomic_write(tmp_path, {"token": first, "ca.crt": "-----BEGIN CERTIFICATE-----"}, 1)
    auth = KubernetesAuth.model_validate(
        {
            "type": "kubernetes",
            "token_file": str(tmp_path / "token"),
            "ca_file": str(tmp_path / "ca.crt"),
        }
    )
    provider = build_provider(auth, path="integrations.k8s.auth", poll_interval=3600)
    providers.append(provider)
    await provider.start()
    assert await header_of(provider) == f"Bearer {first}"
    assert provider.state() == "valid"
    assert provider.can_refresh
    expires = provider.expires_at()
    assert expires is not None
    assert 590 < expires.timestamp() - time.time() <= 600
    assert transport_ca_file(auth) == str(tmp_path / "ca.crt")

    second = cluster_token("https://kubernetes.default.svc", lifetime=1200)
    k8s_atomic_write(tmp_path, {"token": second, "ca.crt": "-----BEGIN CERTIFICATE-----"}, 2)
    assert await header_of(provider) == f"Bearer {first}"  # the poll is an hour away ...
    provider.invalidate()  # ... but a 401 makes the next call look at the file at once
    assert await header_of(provider) == f"Bearer {second}"
    expires = provider.expires_at()
    assert expires is not None
    assert expires.timestamp() - time.time() > 1100

    stale = cluster_token("https://kubernetes.default.svc", lifetime=-10)
    k8s_atomic_write(tmp_path, {"token": stale, "ca.crt": "x"}, 3)
    provider.invalidate()
    await header_of(provider)
    assert provider.state().startswith("failed: the token in")
    assert stale not in provider.state()


def test_a_missing_kubernetes_token_file_is_a_config_error(tmp_path: Path) -> None:
    auth = KubernetesAuth.model_validate(
        {"type": "kubernetes", "token_file": str(tmp_path / "none")}
    )
    with pytest.raises(ConfigError) as info:
        build_provider(auth, path="integrations.k8s.auth")
    assert info.value.problems[0].path == "integrations.k8s.auth.token_file"
    assert transport_ca_file(auth_from({"type": "bearer", "token": "abcdefgh"})) is None
