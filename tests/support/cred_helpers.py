"""Helpers for the credential tests: key pairs, cluster-signed JWTs, and the engine's 401 dance."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.credentials.base import CredentialProvider


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: bytes


@cache
def key_pair(label: str) -> KeyPair:
    """An RSA key pair generated in the test run (cached per label: keygen is slow-ish)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(private, public)


def cluster_token(
    audience: str, *, subject: str = "system:serviceaccount:ns:app", lifetime: int = 3600
) -> str:
    """A projected service-account-style token signed by the test "cluster" key."""
    now = int(time.time())
    claims = {
        "iss": "https://cluster.test",
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": os.urandom(6).hex(),
    }
    return jwt.encode(claims, key_pair("cluster").private_pem, algorithm="RS256")


async def call(
    provider: CredentialProvider,
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One call as the engine makes it: apply, send, and on a 401 invalidate and resend once."""
    sent_headers = dict(headers or {})
    for attempt in range(2):
        await provider.apply(method, url, sent_headers, body)
        response = await client.request(method, url, headers=sent_headers, content=body)
        if response.status_code == 401 and provider.can_refresh and attempt == 0:
            provider.invalidate()
            continue
        return response
    return response


def k8s_atomic_write(directory: Path, files: dict[str, str], generation: int) -> None:
    """Update a Secret volume the way the kubelet's AtomicWriter does.

    Writes a new ``..<timestamp>`` directory, points a temporary ``..data_tmp`` symlink at it,
    renames that over ``..data`` (atomic), and keeps ``name -> ..data/name`` symlinks.
    """
    stamp = f"..2026_01_01_00_00_{generation:02d}.{os.getpid()}"
    target = directory / stamp
    target.mkdir()
    for name, text in files.items():
        (target / name).write_text(text)
    tmp = directory / "..data_tmp"
    tmp.symlink_to(stamp)
    old = os.readlink(directory / "..data") if (directory / "..data").is_symlink() else None
    os.replace(tmp, directory / "..data")
    for name in files:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(Path("..data") / name)
    if old is not None:
        for child in (directory / old).iterdir():
            child.unlink()
        (directory / old).rmdir()
