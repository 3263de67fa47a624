"""Fixtures for the authentication tests.

``settings`` is redefined so a test can change individual settings by parametrizing
``settings_overrides``, e.g.
``@pytest.mark.parametrize("settings_overrides", [{"auth_failures_per_ip_per_hour": 50}])``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from esimgate.app import create_app
from esimgate.config import Settings
from esimgate.runtime import Runtime
from tests.conftest import _settings

ClientFrom = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {}


@pytest.fixture
def settings(
    database_url: str, _schema: None, tmp_path: Path, settings_overrides: dict[str, object]
) -> Settings:
    return _settings(database_url, tmp_path, **settings_overrides)


@pytest.fixture
def client_from(runtime: Runtime) -> ClientFrom:
    """An HTTP client for the same server (same runtime) that connects from another IP."""

    @asynccontextmanager
    async def make(ip: str) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(runtime=runtime, migrate=False, embedded_worker=False)
        transport = httpx.ASGITransport(app=app, client=(ip, 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://esimgate.test") as http:
            yield http

    return make
