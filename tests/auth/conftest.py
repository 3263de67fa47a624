"""Fixtures for the authentication tests.

``settings`` is redefined so a test can change individual settings by parametrizing
``settings_overrides``, e.g.
``@pytest.mark.parametrize("settings_overrides", [{"auth_failures_per_ip_per_hour": 50}])``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing
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


@pytest.fixture(autouse=True)
def _keep_sqlite_wal_open(database_url: str, _schema: None) -> Iterator[None]:
    """Speed only: the app's SQLite engine opens a connection per unit of work (NullPool), and
    when the last connection to a WAL database closes SQLite checkpoints and syncs the WAL, which
    makes every write cost a disk flush. An idle reader held open for the test avoids that; it
    takes no lock, so it changes no behaviour."""
    if not database_url.startswith("sqlite"):
        yield
        return
    path = database_url.split(":///", 1)[1]
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        yield


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
