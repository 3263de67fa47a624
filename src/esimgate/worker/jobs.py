"""Job rows: enqueue inside the caller's transaction; handlers registered by kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.worker.models import Job, JobStatus

if TYPE_CHECKING:
    from esimgate.runtime import Runtime

JobHandler = Callable[["Runtime", dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Periodic:
    """A job kind the worker runs every ``interval``."""

    kind: str
    interval: timedelta

    @property
    def dedupe_key(self) -> str:
        return f"periodic:{self.kind}"


HANDLERS: dict[str, JobHandler] = {}
PERIODIC: dict[str, Periodic] = {}


def job(kind: str, *, every: timedelta | None = None) -> Callable[[JobHandler], JobHandler]:
    """Register a handler for ``kind`` (optionally run periodically)."""

    def register(handler: JobHandler) -> JobHandler:
        HANDLERS[kind] = handler
        if every is not None:
            PERIODIC[kind] = Periodic(kind, every)
        return handler

    return register


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    run_at: datetime | None = None,
    dedupe_key: str | None = None,
) -> Job | None:
    """Add a job row to the current transaction. With a ``dedupe_key``, nothing is added
    while an unfinished job holds that key (returns None), also when two transactions race."""
    values = {
        "kind": kind,
        "payload": payload,
        "status": JobStatus.QUEUED,
        "run_at": run_at or now,
        "dedupe_key": dedupe_key,
        "attempts": 0,
        "max_attempts": 10,
        "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(Job).values(**values)
    if dedupe_key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
    inserted = await session.execute(statement.returning(Job.id))
    job_id = inserted.scalar_one_or_none()
    if job_id is None:
        return None
    return await session.get(Job, job_id)
