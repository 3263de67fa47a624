"""The background usage sync: batches, schedules, events exactly once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from esimgate.esims.models import Esim
from esimgate.esims.sync import sync_due
from esimgate.esims.usage import ACTIVE_EVERY, NEW_EVERY, WATCH_CLOSELY
from esimgate.runtime import Runtime
from tests.esims.test_lifecycle import events, simulator
from tests.orders.test_place_order import ORDER, package
from tests.support import SignedClient


async def stored(runtime: Runtime) -> dict[str, Esim]:
    async with runtime.sessions() as session:
        return {e.iccid: e for e in (await session.execute(select(Esim))).scalars()}


async def test_sync_batches_schedules_and_emits_once(
    api: SignedClient, runtime: Runtime, clock: Any
) -> None:
    real, counting = await simulator(runtime)
    pkg = await package(runtime, "Thailand")
    order = (await api.post(ORDER, {"packageCode": pkg["code"], "quantity": 3})).json()
    idle, busy, full = (e["iccid"] for e in order["esims"])
    total_mb = (await api.get(f"/api/v1/business/esims/usage/query?iccid={busy}")).json()["data"][
        "data"
    ]["total_mb"]
    for iccid in (busy, full):
        await real.install(iccid)
        await real.attach(iccid)
    await real.use(busy, total_mb * 0.25)
    await real.use(full, total_mb * 0.85)

    assert (await sync_due(runtime)).esims == 0  # nothing due before the first check
    clock.advance(minutes=11)
    stats = await sync_due(runtime)
    assert (stats.esims, stats.requests, stats.failed_requests) == (3, 1, 0)
    assert counting.usage_calls == 1
    now = clock.now()
    rows = await stored(runtime)
    assert rows[idle].status == "NEW" and rows[idle].next_sync_at == now + NEW_EVERY
    assert rows[busy].status == "ACTIVE" and rows[busy].next_sync_at == now + ACTIVE_EVERY
    assert rows[full].next_sync_at == now + WATCH_CLOSELY
    assert rows[busy].used_bytes == total_mb * 1024 * 1024 // 4

    assert (await sync_due(runtime)).esims == 0
    clock.advance(minutes=5)
    assert (await sync_due(runtime)).esims == 1  # only the one near its limit
    await real.use(full, total_mb * 0.15)
    clock.advance(minutes=5)
    await sync_due(runtime)
    rows = await stored(runtime)
    assert rows[full].status == "DEPLETED" and rows[full].next_sync_at is None
    threshold_events = [e for e in await events(runtime) if "threshold" in e]
    assert sorted(threshold_events) == sorted(
        [
            "esim.usage_threshold:50",
            "esim.usage_threshold:80",
            "esim.usage_threshold:90",
            "esim.usage_threshold:100",
        ]
    )


async def test_sync_survives_a_failing_upstream(
    api: SignedClient, runtime: Runtime, clock: Any
) -> None:
    _, counting = await simulator(runtime)
    pkg = await package(runtime, "Thailand")
    await api.post(ORDER, {"packageCode": pkg["code"]})
    from esimgate.providers.base import TechnicalError

    counting.fail = TechnicalError("down", committed=None)
    clock.advance(minutes=11)
    stats = await sync_due(runtime)
    assert (stats.esims, stats.failed_requests) == (0, 1)
    counting.fail = None
    assert (await sync_due(runtime)).esims == 1  # still due: retried on the next pass
