"""The worker: claims due job rows and runs them; taskiq only delivers "run job N now".

Rows are the truth. A job is claimed with a guarded UPDATE (so two workers never run one job),
leased for a while (so a crashed worker's job is picked up again when the lease ends), and
retried with backoff up to ``max_attempts``. The broker (in-memory when embedded, Redis at
scale) makes new jobs start at once; the periodic sweep finds anything the broker dropped.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from taskiq import AsyncBroker, InMemoryBroker

from esimgate.catalog import tasks as catalog_tasks
from esimgate.esims import sync as esim_sync
from esimgate.orders import tasks as order_tasks
from esimgate.providers import inbound as provider_inbound
from esimgate.providers.simulator import autopilot as simulator_autopilot
from esimgate.webhooks import tasks as webhook_tasks
from esimgate.worker import tasks as worker_tasks
from esimgate.worker.jobs import HANDLERS, PERIODIC, enqueue
from esimgate.worker.models import Job, JobStatus

if TYPE_CHECKING:
    from esimgate.runtime import Runtime

log = logging.getLogger(__name__)

# Every module with @job handlers, imported so their handlers are registered.
TASK_MODULES = (
    catalog_tasks,
    esim_sync,
    order_tasks,
    provider_inbound,
    simulator_autopilot,
    webhook_tasks,
    worker_tasks,
)

LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(minutes=30)


def build_broker(redis_url: str | None) -> AsyncBroker:
    if redis_url:
        from taskiq_redis import ListQueueBroker

        broker: AsyncBroker = ListQueueBroker(redis_url, queue_name="esimgate:jobs")
        return broker
    return InMemoryBroker()


class Worker:
    """Runs job rows for one runtime."""

    def __init__(self, runtime: Runtime, broker: AsyncBroker | None = None) -> None:
        self.runtime = runtime
        self.broker = broker or build_broker(runtime.settings.redis_url)
        self._wake = asyncio.Event()

        async def run_job(job_id: int) -> None:
            await self.run_one(job_id)

        self._task = self.broker.register_task(run_job, task_name="esimgate.run_job")

    async def kick(self, job_ids: list[int]) -> None:
        """Ask the job engine to run these jobs now (best effort; the sweep is the backstop)."""
        for job_id in job_ids:
            try:
                await self._task.kiq(job_id)
            except Exception:  # the row is committed; the sweep will run it
                log.warning("could not hand job %s to the broker", job_id, exc_info=True)

    async def schedule_periodic(self) -> None:
        now = self.runtime.clock.now()
        async with self.runtime.sessions() as session, session.begin():
            for periodic in PERIODIC.values():
                await enqueue(session, periodic.kind, {}, now=now, dedupe_key=periodic.dedupe_key)

    async def due_job_ids(self, limit: int = 100) -> list[int]:
        now = self.runtime.clock.now()
        async with self.runtime.sessions() as session:
            result = await session.execute(
                select(Job.id)
                .where(
                    or_(
                        (Job.status == JobStatus.QUEUED) & (Job.run_at <= now),
                        (Job.status == JobStatus.RUNNING) & (Job.locked_until < now),
                    )
                )
                .order_by(Job.run_at, Job.id)
                .limit(limit)
            )
            return list(result.scalars())

    async def run_due(self, limit: int = 100) -> int:
        """Run every due job once; returns how many ran."""
        ran = 0
        for job_id in await self.due_job_ids(limit):
            ran += await self.run_one(job_id)
        return ran

    async def _claim(self, job_id: int) -> Job | None:
        now = self.runtime.clock.now()
        async with self.runtime.sessions() as session, session.begin():
            claimed = await session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    or_(
                        (Job.status == JobStatus.QUEUED) & (Job.run_at <= now),
                        (Job.status == JobStatus.RUNNING) & (Job.locked_until < now),
                    ),
                )
                .values(
                    status=JobStatus.RUNNING, locked_until=now + LEASE, attempts=Job.attempts + 1
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return await session.get(Job, job_id)

    async def run_one(self, job_id: int) -> bool:
        """Claim and run one job; False when another worker has it or it is not due."""
        job = await self._claim(job_id)
        if job is None:
            return False
        handler = HANDLERS.get(job.kind)
        error: str | None = None
        if handler is None:
            error = f"no handler for job kind {job.kind!r}"
        else:
            try:
                await handler(self.runtime, job.payload)
            except Exception as exc:
                log.exception("job %s (%s) failed", job.id, job.kind)
                error = f"{type(exc).__name__}: {exc}"[:2000]
        await self._finish(job, error)
        return True

    async def _finish(self, job: Job, error: str | None) -> None:
        now = self.runtime.clock.now()
        values: dict[str, Any]
        if error is None:
            values = {"status": JobStatus.DONE, "finished_at": now, "dedupe_key": None}
        elif job.attempts >= job.max_attempts:
            values = {
                "status": JobStatus.FAILED,
                "finished_at": now,
                "dedupe_key": None,
                "last_error": error,
            }
        else:
            backoff = min(MAX_BACKOFF, timedelta(seconds=2 ** min(job.attempts, 20)))
            values = {"status": JobStatus.QUEUED, "run_at": now + backoff, "last_error": error}
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(
                update(Job)
                .where(Job.id == job.id, Job.status == JobStatus.RUNNING)
                .values(locked_until=None, **values)
            )
            periodic = PERIODIC.get(job.kind)
            if error is None and periodic is not None:
                await enqueue(
                    session,
                    job.kind,
                    {},
                    now=now,
                    run_at=now + periodic.interval,
                    dedupe_key=periodic.dedupe_key,
                )

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """The sweep loop: periodic jobs and anything due, until ``stop`` is set."""
        await self.broker.startup()
        try:
            while not stop.is_set():
                try:
                    await self.schedule_periodic()
                    await self.run_due()
                except Exception:
                    log.exception("worker sweep failed; retrying")
                self._wake.clear()
                waiters = [asyncio.ensure_future(e.wait()) for e in (stop, self._wake)]
                await asyncio.wait(
                    waiters,
                    timeout=self.runtime.settings.worker_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for waiter in waiters:
                    waiter.cancel()
        finally:
            await self.broker.shutdown()
