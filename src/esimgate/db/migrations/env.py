"""Alembic environment: always handed a live connection by esimgate.db.migrate."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from esimgate.db import models  # noqa: F401 - registers every table on Base.metadata
from esimgate.db.base import Base
from esimgate.db.engine import create_engine

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # the plain `alembic` command line, e.g. `alembic revision --autogenerate`
    asyncio.run(_run_with_own_engine(context.config.get_main_option("sqlalchemy.url") or ""))
