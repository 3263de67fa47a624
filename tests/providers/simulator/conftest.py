"""A simulator on its own database tables: no migrations, no app.

Every test gets a fresh temporary SQLite database, and, when ESIMGATE_TEST_DATABASE_URL names a
PostgreSQL database, runs a second time there in a throwaway schema (so the concurrency tests meet
real row locks and unique-key races, and the migrated ``public`` schema is never touched).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from esimgate.clock import FrozenClock
from esimgate.db.base import Base
from esimgate.db.engine import create_engine, session_factory
from esimgate.providers.simulator.adapter import SimulatorProvider
from esimgate.providers.simulator.models import SIMULATOR_TABLES

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
POSTGRES_URL = os.environ.get("ESIMGATE_TEST_DATABASE_URL")
BACKENDS = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture(params=BACKENDS)
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    schema: str | None = None
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'simulator.db'}")
    else:
        assert POSTGRES_URL is not None
        schema = f"sim_test_{uuid.uuid4().hex[:12]}"
        base_engine = create_engine(POSTGRES_URL)
        async with base_engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = base_engine.execution_options(schema_translate_map={None: schema})
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all, tables=list(SIMULATOR_TABLES))
    try:
        yield session_factory(engine)
    finally:
        await _drop(engine, schema)


async def _drop(engine: AsyncEngine, schema: str | None) -> None:
    if schema is not None:
        async with engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await engine.dispose()


@pytest.fixture
def sim(sessions: async_sessionmaker[AsyncSession], clock: FrozenClock) -> SimulatorProvider:
    return SimulatorProvider(sessions, clock, account="sim-test", async_delay_seconds=30)
