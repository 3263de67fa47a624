"""Job rows: enqueue inside the caller's transaction; handlers registered by kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
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
    while an unfinished job holds that key (returns None)."""
    if dedupe_key is not None:
        existing = await session.scalar(select(Job.id).where(Job.dedupe_key == dedupe_key))
        if existing is not None:
            return None
    row = Job(
        kind=kind,
        payload=payload,
        status=JobStatus.QUEUED,
        run_at=run_at or now,
        dedupe_key=dedupe_key,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row
