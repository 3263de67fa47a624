"""The job engine: rows are the truth; claims, leases, retries, dedupe keys and schedules.

Test-only job kinds are registered with the real ``@job`` decorator and removed afterwards.
Every worker here gets its own in-memory taskiq broker (never the Redis one), so nothing
leaves the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy import func, select, update
from taskiq import InMemoryBroker

from esimgate.clock import FrozenClock
from esimgate.runtime import Runtime
from esimgate.worker.engine import LEASE, MAX_BACKOFF, Worker
from esimgate.worker.jobs import HANDLERS, PERIODIC, Periodic, enqueue, job
from esimgate.worker.models import Job, JobStatus

COUNT = "test.count"
FAIL = "test.fail"
SLOW = "test.slow"
TICK = "test.tick"  # periodic
TEST_KINDS = (COUNT, FAIL, SLOW, TICK)
TICK_EVERY = timedelta(minutes=10)


class Calls(list[tuple[str, dict[str, Any]]]):
    def of(self, kind: str) -> list[dict[str, Any]]:
        return [payload for k, payload in self if k == kind]


@pytest.fixture
def calls() -> Iterator[Calls]:
    """Register the test kinds; every run is recorded as (kind, payload)."""
    record = Calls()
    assert not set(TEST_KINDS) & set(HANDLERS)

    async def count(_runtime: Runtime, payload: dict[str, Any]) -> None:
        record.append((COUNT, payload))

    async def fail(_runtime: Runtime, payload: dict[str, Any]) -> None:
        record.append((FAIL, payload))
        raise RuntimeError("boom")

    async def slow(_runtime: Runtime, payload: dict[str, Any]) -> None:
        record.append((SLOW, payload))
        await asyncio.sleep(0.05)

    async def tick(_runtime: Runtime, payload: dict[str, Any]) -> None:
        record.append((TICK, payload))

    job(COUNT)(count)
    job(FAIL)(fail)
    job(SLOW)(slow)
    job(TICK, every=TICK_EVERY)(tick)
    try:
        yield record
    finally:
        for kind in TEST_KINDS:
            HANDLERS.pop(kind, None)
            PERIODIC.pop(kind, None)
    assert not set(TEST_KINDS) & (set(HANDLERS) | set(PERIODIC))


@pytest.fixture
async def workers(runtime: Runtime) -> AsyncIterator[list[Worker]]:
    """Make workers with `new_worker`; their brokers are shut down afterwards."""
    made: list[Worker] = []
    yield made
    for worker in made:
        await worker.broker.shutdown()


def new_worker(runtime: Runtime, workers: list[Worker], broker: Any = None) -> Worker:
    worker = Worker(runtime, broker or InMemoryBroker())
    workers.append(worker)
    return worker


async def add_job(
    runtime: Runtime,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    dedupe_key: str | None = None,
    max_attempts: int | None = None,
) -> int:
    async with runtime.sessions() as session, session.begin():
        row = await enqueue(
            session,
            kind,
            payload or {},
            now=runtime.clock.now(),
            run_at=run_at,
            dedupe_key=dedupe_key,
        )
        assert row is not None
        if max_attempts is not None:
            row.max_attempts = max_attempts
    return row.id


async def load(runtime: Runtime, job_id: int) -> Job:
    async with runtime.sessions() as session:
        row = await session.get(Job, job_id)
    assert row is not None
    return row


async def jobs_of(runtime: Runtime, kind: str) -> list[Job]:
    async with runtime.sessions() as session:
        rows = await session.scalars(select(Job).where(Job.kind == kind).order_by(Job.id))
        return list(rows)


def state(row: Job) -> dict[str, Any]:
    return {
        "status": row.status,
        "attempts": row.attempts,
        "run_at": row.run_at,
        "locked_until": row.locked_until,
        "finished_at": row.finished_at,
        "last_error": row.last_error,
        "dedupe_key": row.dedupe_key,
    }


# --- running ------------------------------------------------------------------------------------


async def test_an_enqueued_job_runs_once(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    queued_at = clock.now()
    job_id = await add_job(runtime, COUNT, {"order_id": 7})
    assert await worker.due_job_ids() == [job_id]
    clock.advance(seconds=3)

    assert await worker.run_due() == 1
    assert calls == [(COUNT, {"order_id": 7})]
    assert state(await load(runtime, job_id)) == {
        "status": JobStatus.DONE,
        "attempts": 1,
        "run_at": queued_at,
        "locked_until": None,
        "finished_at": clock.now(),
        "last_error": None,
        "dedupe_key": None,
    }
    assert await worker.run_due() == 0
    assert await worker.run_one(job_id) is False
    clock.advance(hours=1)
    assert await worker.run_due() == 0
    assert len(calls) == 1


async def test_a_job_scheduled_later_waits_for_its_time(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    job_id = await add_job(runtime, COUNT, run_at=clock.now() + timedelta(minutes=1))
    assert await worker.run_due() == 0
    assert await worker.run_one(job_id) is False
    clock.advance(seconds=59)
    assert await worker.run_due() == 0
    clock.advance(seconds=1)
    assert await worker.run_due() == 1
    assert calls.of(COUNT) == [{}]


async def test_due_jobs_run_in_run_at_order(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    start = clock.now()
    for n, delay in ((1, 30), (2, 10), (3, 20)):
        await add_job(runtime, COUNT, {"n": n}, run_at=start + timedelta(seconds=delay))
    clock.advance(seconds=30)
    assert await worker.run_due() == 3
    assert calls.of(COUNT) == [{"n": 2}, {"n": 3}, {"n": 1}]


async def test_a_failing_job_is_retried_with_backoff_then_fails(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    job_id = await add_job(runtime, FAIL, {"x": 1}, dedupe_key="fail:1", max_attempts=4)

    for attempt, backoff in ((1, 2), (2, 4), (3, 8)):
        assert await worker.run_due() == 1, attempt
        assert state(await load(runtime, job_id)) == {
            "status": JobStatus.QUEUED,
            "attempts": attempt,
            "run_at": clock.now() + timedelta(seconds=backoff),
            "locked_until": None,
            "finished_at": None,
            "last_error": "RuntimeError: boom",
            "dedupe_key": "fail:1",  # still unfinished: the key is held
        }
        assert await worker.run_due() == 0
        clock.advance(seconds=backoff - 1)
        assert await worker.run_due() == 0, attempt
        clock.advance(seconds=1)

    assert await worker.run_due() == 1
    assert state(await load(runtime, job_id)) == {
        "status": JobStatus.FAILED,
        "attempts": 4,
        "run_at": clock.now(),  # it ran exactly when its last backoff ended
        "locked_until": None,
        "finished_at": clock.now(),
        "last_error": "RuntimeError: boom",
        "dedupe_key": None,
    }
    clock.advance(days=1)
    assert await worker.run_due() == 0
    assert calls.of(FAIL) == [{"x": 1}] * 4


async def test_backoff_is_capped(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    job_id = await add_job(runtime, FAIL, max_attempts=30)
    async with runtime.sessions() as session, session.begin():
        await session.execute(update(Job).where(Job.id == job_id).values(attempts=14))
    assert await worker.run_due() == 1
    row = await load(runtime, job_id)
    assert (row.attempts, row.run_at) == (15, clock.now() + MAX_BACKOFF)  # not 2**15 s
    assert timedelta(minutes=30) == MAX_BACKOFF


async def test_a_job_without_handler_is_an_error_not_a_crash(
    runtime: Runtime, clock: FrozenClock, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    job_id = await add_job(runtime, "test.nobody-handles-this", max_attempts=1)
    assert await worker.run_due() == 1
    row = await load(runtime, job_id)
    assert (row.status, row.attempts, row.last_error) == (
        JobStatus.FAILED,
        1,
        "no handler for job kind 'test.nobody-handles-this'",
    )


# --- claims and leases --------------------------------------------------------------------------


async def test_two_workers_racing_for_one_job_run_it_once(
    runtime: Runtime, calls: Calls, workers: list[Worker]
) -> None:
    first, second = new_worker(runtime, workers), new_worker(runtime, workers)
    job_id = await add_job(runtime, SLOW, {"n": 1})
    results = await asyncio.gather(first.run_one(job_id), second.run_one(job_id))
    assert sorted(results) == [False, True]
    assert calls.of(SLOW) == [{"n": 1}]
    row = await load(runtime, job_id)
    assert (row.status, row.attempts) == (JobStatus.DONE, 1)


async def test_many_workers_sweeping_together_run_each_job_once(
    runtime: Runtime, calls: Calls, workers: list[Worker]
) -> None:
    pool = [new_worker(runtime, workers) for _ in range(4)]
    ids = [await add_job(runtime, SLOW, {"n": n}) for n in range(6)]
    ran = await asyncio.gather(*(w.run_due() for w in pool))
    assert sum(ran) == 6
    assert sorted(p["n"] for p in calls.of(SLOW)) == list(range(6))
    for job_id in ids:
        row = await load(runtime, job_id)
        assert (row.status, row.attempts) == (JobStatus.DONE, 1), job_id


async def test_a_crashed_workers_job_is_picked_up_when_its_lease_ends(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    job_id = await add_job(runtime, COUNT, {"n": 1})
    # Another worker claimed it (as _claim does) and died without finishing.
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=JobStatus.RUNNING, attempts=1, locked_until=clock.now() + LEASE)
        )
    assert await worker.due_job_ids() == []
    assert await worker.run_due() == 0
    clock.advance(seconds=LEASE.total_seconds())
    assert await worker.run_due() == 0  # the lease ends strictly after locked_until
    clock.advance(seconds=1)
    assert await worker.due_job_ids() == [job_id]
    assert await worker.run_due() == 1
    assert calls.of(COUNT) == [{"n": 1}]
    row = await load(runtime, job_id)
    assert (row.status, row.attempts, row.locked_until) == (JobStatus.DONE, 2, None)


async def test_a_job_with_an_expired_lease_in_the_past_is_taken_over(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    job_id = await add_job(runtime, COUNT)
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status=JobStatus.RUNNING,
                attempts=3,
                locked_until=clock.now() - timedelta(seconds=1),
            )
        )
    assert await worker.run_one(job_id) is True
    row = await load(runtime, job_id)
    assert (row.status, row.attempts) == (JobStatus.DONE, 4)
    assert len(calls) == 1


# --- dedupe keys --------------------------------------------------------------------------------


async def test_dedupe_key_allows_one_unfinished_job(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    first = await add_job(runtime, COUNT, {"try": 1}, dedupe_key="order:42")
    async with runtime.sessions() as session, session.begin():
        again = await enqueue(session, COUNT, {"try": 2}, now=clock.now(), dedupe_key="order:42")
        other = await enqueue(session, COUNT, {"try": 3}, now=clock.now(), dedupe_key="order:43")
    assert again is None
    assert other is not None
    assert [(j.id, j.payload) for j in await jobs_of(runtime, COUNT)] == [
        (first, {"try": 1}),
        (other.id, {"try": 3}),
    ]

    assert await worker.run_due() == 2  # finished jobs release their key …
    async with runtime.sessions() as session, session.begin():
        later = await enqueue(session, COUNT, {"try": 4}, now=clock.now(), dedupe_key="order:42")
    assert later is not None and later.id != first  # … so the next one may be queued
    assert (await load(runtime, first)).dedupe_key is None


async def test_a_job_failing_for_good_releases_its_key(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    await add_job(runtime, FAIL, dedupe_key="k", max_attempts=1)
    assert await worker.run_due() == 1
    assert await add_job(runtime, COUNT, dedupe_key="k") > 0


async def test_concurrent_enqueues_with_one_dedupe_key_add_one_job(runtime: Runtime) -> None:
    async def enqueue_slowly(n: int) -> Job | None:
        async with runtime.sessions() as session, session.begin():
            row = await enqueue(session, COUNT, {"n": n}, now=runtime.clock.now(), dedupe_key="k")
            await asyncio.sleep(0.1)  # both transactions are open before either commits
            return row

    results = await asyncio.gather(enqueue_slowly(1), enqueue_slowly(2))
    assert sorted(r is None for r in results) == [False, True]
    assert len(await jobs_of(runtime, COUNT)) == 1


# --- schedules ----------------------------------------------------------------------------------


async def test_periodic_jobs_are_seeded_once_and_rescheduled_after_each_run(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    assert PERIODIC[TICK] == Periodic(TICK, TICK_EVERY)
    await worker.schedule_periodic()
    await worker.schedule_periodic()
    async with runtime.sessions() as session:
        seeded = (await session.execute(select(Job.kind, Job.dedupe_key, Job.status))).all()
    assert sorted(seeded) == sorted(
        (kind, f"periodic:{kind}", JobStatus.QUEUED) for kind in PERIODIC
    )
    assert {"catalog.sync", "auth.purge_admission", TICK} <= set(PERIODIC)

    (tick,) = await jobs_of(runtime, TICK)
    assert tick.run_at == clock.now()
    clock.advance(seconds=5)
    assert await worker.run_one(tick.id) is True
    ran_at = clock.now()
    done, following = await jobs_of(runtime, TICK)
    assert (done.id, done.status, done.dedupe_key) == (tick.id, JobStatus.DONE, None)
    assert (following.status, following.run_at, following.dedupe_key) == (
        JobStatus.QUEUED,
        ran_at + TICK_EVERY,
        f"periodic:{TICK}",
    )
    await worker.schedule_periodic()  # the queued successor holds the key
    assert len(await jobs_of(runtime, TICK)) == 2

    assert following.id not in await worker.due_job_ids()
    clock.advance(seconds=TICK_EVERY.total_seconds())
    assert following.id in await worker.due_job_ids()
    assert await worker.run_one(following.id) is True
    rows = await jobs_of(runtime, TICK)
    assert [r.status for r in rows] == [JobStatus.DONE, JobStatus.DONE, JobStatus.QUEUED]
    assert rows[-1].run_at == clock.now() + TICK_EVERY
    assert calls.of(TICK) == [{}, {}]


async def test_a_failed_periodic_run_is_retried_not_duplicated(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    with patch.dict(PERIODIC, {FAIL: Periodic(FAIL, TICK_EVERY)}):
        await worker.schedule_periodic()
        (row,) = await jobs_of(runtime, FAIL)
        assert await worker.run_one(row.id) is True
        await worker.schedule_periodic()
    rows = await jobs_of(runtime, FAIL)
    assert [(r.id, r.status, r.attempts) for r in rows] == [(row.id, JobStatus.QUEUED, 1)]


# --- the broker and the loop --------------------------------------------------------------------


async def wait_until(condition: Any, within: float = 5.0) -> None:
    """Poll the database until ``condition()`` holds, for at most ``within`` seconds."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - polling rows, not an in-process flag
            await asyncio.sleep(0.01)


async def test_kick_through_the_in_memory_broker_runs_the_job(
    runtime: Runtime, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    await worker.broker.startup()
    job_id = await add_job(runtime, COUNT, {"kicked": True})
    await worker.kick([job_id])
    await asyncio.wait_for(worker.broker.wait_all(), timeout=5)  # type: ignore[attr-defined]

    async def done() -> bool:
        return (await load(runtime, job_id)).status == JobStatus.DONE

    await wait_until(done)
    assert calls == [(COUNT, {"kicked": True})]
    await worker.kick([job_id])  # already done: the kick is a no-op
    await asyncio.wait_for(worker.broker.wait_all(), timeout=5)  # type: ignore[attr-defined]
    assert len(calls) == 1


class DownBroker(InMemoryBroker):
    async def kick(self, message: Any) -> None:
        raise ConnectionError("broker down")


async def test_a_broker_failure_leaves_the_job_to_the_sweep(
    runtime: Runtime, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers, DownBroker())
    job_id = await add_job(runtime, COUNT)
    await worker.kick([job_id])  # logged, not raised
    assert (await load(runtime, job_id)).status == JobStatus.QUEUED
    assert calls == []
    assert await worker.run_due() == 1
    assert len(calls) == 1


async def test_run_forever_seeds_runs_and_stops(
    runtime: Runtime, clock: FrozenClock, calls: Calls, workers: list[Worker]
) -> None:
    worker = new_worker(runtime, workers)
    with patch.dict(PERIODIC, {TICK: PERIODIC[TICK]}, clear=True):
        stop = asyncio.Event()
        job_id = await add_job(runtime, COUNT, {"n": 1})
        loop = asyncio.create_task(worker.run_forever(stop))
        try:

            async def ran() -> bool:
                return len(calls) >= 2

            await wait_until(ran)
            assert sorted(kind for kind, _ in calls) == [COUNT, TICK]
            assert (await load(runtime, job_id)).status == JobStatus.DONE

            later = await add_job(runtime, COUNT, {"n": 2})
            worker.wake()

            async def woke() -> bool:
                return (await load(runtime, later)).status == JobStatus.DONE

            await wait_until(woke, within=runtime.settings.worker_poll_seconds + 5)
        finally:
            stop.set()
            await asyncio.wait_for(loop, timeout=10)
    assert calls.of(COUNT) == [{"n": 1}, {"n": 2}]
    assert calls.of(TICK) == [{}]  # the successor is due only in ten minutes
    async with runtime.sessions() as session:
        queued = await session.scalar(
            select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED)
        )
    assert queued == 1


async def test_finished_jobs_are_purged_after_a_week(runtime: Runtime, clock: FrozenClock) -> None:
    from esimgate.worker.tasks import purge_jobs

    async with runtime.sessions() as session, session.begin():
        for status, age in (("done", 8), ("failed", 8), ("done", 6), ("queued", 30)):
            session.add(
                Job(
                    kind="x",
                    payload={},
                    status=status,
                    run_at=clock.now(),
                    created_at=clock.now(),
                    finished_at=clock.now() - timedelta(days=age) if status != "queued" else None,
                )
            )
    await purge_jobs(runtime, {})
    async with runtime.sessions() as session:
        left = await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "x"))
    assert left == 2
