"""Fixtures shared by the credentials tests (registered as a pytest plugin in conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agent.credentials import CredentialProvider


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain client for calling the loopback test servers directly."""
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def providers() -> AsyncIterator[list[CredentialProvider]]:
    """Providers a test started; all closed after it (their background tasks stop)."""
    made: list[CredentialProvider] = []
    yield made
    for provider in made:
        await provider.aclose()
