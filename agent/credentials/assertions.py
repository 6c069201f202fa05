"""Signed JWT assertions (RS256) for the JWT-bearer grant and GitHub Apps, via PyJWT.

Keys are PEM RSA private keys; they are parsed where they are used (a token request, hourly at
most) so a rotated key file is picked up. Errors never include key material.
"""

from __future__ import annotations

from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from agent.credentials.cache import RefreshFailed

__all__ = ["load_rsa_key", "sign_rs256"]


def load_rsa_key(pem: str, *, what: str) -> RSAPrivateKey:
    """Parse a PEM RSA private key (PKCS#1 or PKCS#8); ValueError names ``what`` only."""
    try:
        key = load_pem_private_key(pem.replace("\\n", "\n").encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{what} is not an unencrypted PEM private key") from None
    except Exception:  # cryptography raises UnsupportedAlgorithm and friends
        raise ValueError(f"{what} is not a supported PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(f"{what} is not an RSA key (RS256 needs one)")
    return key


def sign_rs256(claims: dict[str, Any], pem: str, *, what: str, kid: str | None = None) -> str:
    """A compact RS256 JWT; a bad key becomes RefreshFailed naming ``what``."""
    try:
        key = load_rsa_key(pem, what=what)
    except ValueError as exc:
        raise RefreshFailed(str(exc)) from None
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)
