"""Background usage sync: keeps stored usage of live eSIMs fresh within each provider's limits.

Every eSIM carries ``next_sync_at``. The periodic job walks the due ones per provider account in
id order (streaming pages, so memory stays flat), asks the upstream in batches of its
``max_usage_batch`` through the account's token bucket, and stores each batch in one
transaction. How soon an eSIM is due again depends on what it is doing: one close to a usage
threshold or to expiry is watched more closely than one that sits unused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from esimgate.esims.models import Esim
from esimgate.esims.usage import apply_report
from esimgate.providers.base import EsimRef, Provider, ProviderError
from esimgate.providers.models import ProviderAccount
from esimgate.worker.jobs import job

if TYPE_CHECKING:
    from esimgate.runtime import Runtime

log = logging.getLogger(__name__)

PAGE = 2000  # due eSIM ids read per query
CONCURRENCY = 16  # batches in flight per account (the token bucket sets the actual rate)


@dataclass
class SyncStats:
    requests: int = 0
    esims: int = 0
    failed_requests: int = 0
    events: int = 0
    by_account: dict[str, int] = field(default_factory=dict)


async def sync_due(runtime: Runtime, *, limit: int | None = None) -> SyncStats:
    """One pass over every due eSIM (at most ``limit``)."""
    stats = SyncStats()
    async with runtime.sessions() as session:
        accounts = (await session.execute(select(ProviderAccount))).scalars().all()
    for account in accounts:
        await _sync_account(runtime, account, stats, limit)
    return stats


async def _due_ids(runtime: Runtime, account_id: int, after: int, now: datetime) -> list[int]:
    async with runtime.sessions() as session:
        result = await session.execute(
            select(Esim.id)
            .where(
                Esim.provider_account_id == account_id,
                Esim.next_sync_at.is_not(None),
                Esim.next_sync_at <= now,
                Esim.id > after,
            )
            .order_by(Esim.id)
            .limit(PAGE)
        )
        return list(result.scalars())


async def _sync_account(
    runtime: Runtime, account: ProviderAccount, stats: SyncStats, limit: int | None
) -> None:
    adapter = runtime.providers.adapter(account)
    limiter = runtime.providers.limiter(account)
    batch = max(1, adapter.max_usage_batch)
    gate = asyncio.Semaphore(CONCURRENCY)
    now = runtime.clock.now()
    after = 0
    while limit is None or stats.esims < limit:
        ids = await _due_ids(runtime, account.id, after, now)
        if not ids:
            return
        after = ids[-1]
        if limit is not None:
            ids = ids[: limit - stats.esims]
        chunks = [ids[i : i + batch] for i in range(0, len(ids), batch)]

        async def run(chunk: Sequence[int]) -> None:
            async with gate, limiter:
                await _sync_batch(runtime, adapter, account, chunk, stats)

        async with asyncio.TaskGroup() as group:
            for chunk in chunks:
                group.create_task(run(chunk))


async def _sync_batch(
    runtime: Runtime,
    adapter: Provider,
    account: ProviderAccount,
    esim_ids: Sequence[int],
    stats: SyncStats,
) -> None:
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Esim).where(Esim.id.in_(esim_ids)))).scalars().all()
        refs = {r.provider_esim_id: r.id for r in rows}
        queries = [EsimRef(r.iccid, r.provider_esim_id) for r in rows]
    stats.requests += 1
    try:
        async with asyncio.timeout(runtime.settings.provider_timeout_seconds):
            reports = await adapter.query_usage(queries)
    except (ProviderError, TimeoutError) as exc:
        stats.failed_requests += 1
        log.warning("usage sync %s: batch of %d failed: %s", account.name, len(queries), exc)
        return
    now = runtime.clock.now()
    by_id: dict[int, Any] = {
        refs[r.esim.provider_esim_id]: r for r in reports if r.esim.provider_esim_id in refs
    }
    async with runtime.sessions() as session, session.begin():
        locked = (
            await session.execute(
                select(Esim).where(Esim.id.in_(list(by_id))).order_by(Esim.id).with_for_update()
            )
        ).scalars()
        for esim in locked:
            # Not `+=` around an await: concurrent batches would lose each other's counts.
            emitted = await apply_report(session, esim, by_id[esim.id], account.kind, now)
            stats.events += len(emitted)
    stats.esims += len(by_id)
    stats.by_account[account.name] = stats.by_account.get(account.name, 0) + len(by_id)


@job("esims.sync_usage", every=timedelta(minutes=1))
async def sync_usage(runtime: Runtime, _payload: dict[str, Any]) -> None:
    """Refresh the stored usage of every due eSIM."""
    stats = await sync_due(runtime)
    if stats.esims or stats.failed_requests:
        log.info(
            "usage sync: %d eSIMs in %d requests (%d failed), %d events",
            stats.esims,
            stats.requests,
            stats.failed_requests,
            stats.events,
        )
