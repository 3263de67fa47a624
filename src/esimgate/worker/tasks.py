"""Housekeeping jobs that belong to no domain."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete

from esimgate.worker.jobs import job
from esimgate.worker.models import Job, JobStatus

if TYPE_CHECKING:
    from esimgate.runtime import Runtime


@job("auth.purge_admission", every=timedelta(hours=1))
async def purge_admission(runtime: Runtime, _payload: dict[str, Any]) -> None:
    """Drop expired rate counters and request ids (kept ≥ 24 h for replay protection)."""
    await runtime.gate.purge(runtime.clock.now())


KEEP_FINISHED_JOBS = timedelta(days=7)


@job("worker.purge_jobs", every=timedelta(hours=6))
async def purge_jobs(runtime: Runtime, _payload: dict[str, Any]) -> None:
    """Drop finished job rows after a week (their effects live in the domain tables)."""
    cutoff = runtime.clock.now() - KEEP_FINISHED_JOBS
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            delete(Job).where(
                Job.status.in_([JobStatus.DONE, JobStatus.FAILED]), Job.finished_at < cutoff
            )
        )
