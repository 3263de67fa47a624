"""The simulator's autopilot (simulated eSIMs live on their own) and its reporting lag."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from esimgate.clock import FrozenClock
from esimgate.providers.base import EsimRef, OrderRequest, PurchaseState
from esimgate.providers.registry import AdapterConfig
from esimgate.providers.simulator import autopilot
from esimgate.providers.simulator.adapter import SimulatorProvider
from esimgate.providers.simulator.iccid import luhn_valid
from esimgate.providers.simulator.models import SimEsim, SimOrder
from esimgate.runtime import Runtime
from esimgate.worker.jobs import HANDLERS, PERIODIC
from tests.orders.test_place_order import ORDER, package
from tests.support import SignedClient

FRANCE_5GB = "SIM-FR-5GB-30D"
UK_UNLIMITED = "SIM-GB-UNL-7D"
EUROPE_5GB = "SIM-EU-5GB-30D"  # 36 countries
MIB = 1024**2

PROFILE_RANK = {"released": 0, "downloaded": 1, "installed": 2, "enabled": 3, "deleted": 4}
LINE_RANK = {"not_active": 0, "active": 1, "suspended": 1, "cancelled": 2}
PLAN_RANK = {"unused": 0, "in_use": 1, "depleted": 2, "expired": 3, "cancelled": 3}
Sessions = async_sessionmaker[AsyncSession]


async def _buy_many(sim: SimulatorProvider, per_package: int = 3) -> list[str]:
    """Ten eSIMs per order: ``per_package`` orders of each of three kinds of package."""
    iccids = []
    for code in (FRANCE_5GB, UK_UNLIMITED, EUROPE_5GB):
        for n in range(per_package):
            purchase = await sim.create_order(OrderRequest(f"{sim.account}-{code}-{n}", code, 10))
            assert purchase.state is PurchaseState.COMPLETED
            iccids += [e.iccid for e in purchase.esims]
    return iccids


async def _rows(sessions: Sessions, account: str | None = None) -> dict[str, SimEsim]:
    query = select(SimEsim).join(SimOrder, SimOrder.id == SimEsim.order_id)
    if account is not None:
        query = query.where(SimOrder.account == account)
    async with sessions() as session:
        return {row.iccid: row for row in (await session.scalars(query)).all()}


def _state(row: SimEsim) -> tuple[Any, ...]:
    return (
        row.profile_state,
        row.line_state,
        row.plan_state,
        row.used_bytes,
        row.device_imei,
        row.network_country,
    )


async def test_runs_move_esims_forward_and_never_back(
    sim: SimulatorProvider, sessions: Sessions, clock: FrozenClock
) -> None:
    await _buy_many(sim)
    coverage = {p.provider_code: p.coverage for p in await sim.list_packages()}
    before = await _rows(sessions)
    assert len(before) == 90
    seen: Counter[str] = Counter()
    for _ in range(40):
        clock.advance(seconds=30)
        seen += await autopilot.advance(sim, sessions, clock.now())
        after = await _rows(sessions)
        for iccid, row in after.items():
            old = before[iccid]
            assert PROFILE_RANK[row.profile_state] >= PROFILE_RANK[old.profile_state], iccid
            assert LINE_RANK[row.line_state] >= LINE_RANK[old.line_state], iccid
            assert PLAN_RANK[row.plan_state] >= PLAN_RANK[old.plan_state], iccid
            assert row.used_bytes >= old.used_bytes, iccid
            for kept in ("device_model", "device_imei", "activated_at"):
                if getattr(old, kept) is not None:
                    assert getattr(row, kept) == getattr(old, kept), (iccid, kept)
            if old.expires_at is not None and row.expires_at != old.expires_at:
                assert row.plan_state == "expired", iccid  # only an expiry brings it forward
        before = after

    assert seen["installed"] > 30 and seen["attached"] > 20 and seen["used"] > 20, seen
    rows = list(before.values())
    installed = [r for r in rows if r.device_imei is not None]
    assert installed
    models = {model for model, _ in autopilot.DEVICES}
    for row in installed:
        assert row.device_model in models
        assert row.device_imei is not None and len(row.device_imei) == 15
        assert luhn_valid(row.device_imei)
    attached = [r for r in rows if r.activated_at is not None]
    assert attached
    for row in attached:
        assert row.network_country in {c.country_code for c in coverage[row.package_code]}
        assert row.network_operator and row.network_mcc and row.network_mnc
        assert row.network_type in ("5G", "4G - LTE")
    using = [r for r in rows if r.used_bytes > 0]
    assert any(r.total_bytes is None for r in using)  # unlimited plans use data too
    for row in using:
        assert row.last_usage_at is not None and row.activated_at is not None
        if row.total_bytes is not None:
            assert row.used_bytes <= row.total_bytes
    # No eSIM gets a phone or a network out of order.
    assert all(r.profile_state != "released" for r in attached)


async def test_a_run_is_bounded(
    sim: SimulatorProvider, sessions: Sessions, clock: FrozenClock
) -> None:
    await _buy_many(sim)  # 90 live eSIMs
    before = {iccid: _state(row) for iccid, row in (await _rows(sessions)).items()}
    done = await autopilot.advance(sim, sessions, clock.now())
    assert done.total() == autopilot.MAX_PER_RUN == 50
    after = {iccid: _state(row) for iccid, row in (await _rows(sessions)).items()}
    changed = [iccid for iccid in after if after[iccid] != before[iccid]]
    assert 0 < len(changed) <= 50

    clock.advance(seconds=30)
    done = await autopilot.advance(sim, sessions, clock.now(), limit=5)
    assert done.total() == 5
    again = {iccid: _state(row) for iccid, row in (await _rows(sessions)).items()}
    assert len([i for i in again if again[i] != after[i]]) <= 5


async def test_only_its_own_account_moves(
    sim: SimulatorProvider, sessions: Sessions, clock: FrozenClock
) -> None:
    other = SimulatorProvider(sessions, clock, account="other-upstream")
    await _buy_many(other, per_package=1)
    await _buy_many(sim, per_package=1)
    untouched = {i: _state(r) for i, r in (await _rows(sessions, "other-upstream")).items()}
    for _ in range(10):
        clock.advance(seconds=30)
        await autopilot.advance(sim, sessions, clock.now())
    now_other = {i: _state(r) for i, r in (await _rows(sessions, "other-upstream")).items()}
    assert now_other == untouched
    mine = (await _rows(sessions, sim.account)).values()
    assert any(r.profile_state != "released" for r in mine)


async def test_finished_esims_are_left_alone(
    sim: SimulatorProvider, sessions: Sessions, clock: FrozenClock
) -> None:
    (iccid, *_) = await _buy_many(sim, per_package=1)
    await sim.install(iccid, "Pixel 9", None)
    await sim.delete(iccid)
    for _ in range(20):
        clock.advance(seconds=30)
        await autopilot.advance(sim, sessions, clock.now())
    row = (await _rows(sessions))[iccid]
    assert (row.profile_state, row.line_state, row.used_bytes) == ("deleted", "not_active", 0)


def test_personas_are_stable_and_their_imeis_valid() -> None:
    first = autopilot.persona(2026, "8999901000000000012")
    assert autopilot.persona(2026, "8999901000000000012") == first
    assert first.device_model in {model for model, _ in autopilot.DEVICES}
    for n in range(200):
        imei = autopilot.persona(7, f"89999010000000{n:05d}").imei
        assert len(imei) == 15 and luhn_valid(imei), imei


def test_the_job_is_registered_every_thirty_seconds() -> None:
    assert HANDLERS[autopilot.KIND] is autopilot.autopilot
    assert PERIODIC[autopilot.KIND].interval == timedelta(seconds=30)


async def test_the_job_acts_only_when_the_setting_is_on(
    api: SignedClient, runtime: Runtime, clock: FrozenClock
) -> None:
    """Through the app and the test database: eSIMs bought over HTTP, the job as the worker
    runs it."""
    pkg = await package(runtime, "Australia")
    response = await api.post(ORDER, {"packageCode": pkg["code"], "quantity": 3})
    assert response.status_code == 200, response.text
    iccids = {e["iccid"] for e in response.json()["esims"]}
    assert len(iccids) == 3
    run_job = HANDLERS[autopilot.KIND]

    assert runtime.settings.simulator_autopilot is False  # the default
    for _ in range(10):
        clock.advance(seconds=30)
        await run_job(runtime, {})
    rows = await _rows(runtime.sessions)
    assert set(rows) == iccids
    assert {r.profile_state for r in rows.values()} == {"released"}

    runtime.settings.simulator_autopilot = True
    for _ in range(30):
        clock.advance(seconds=30)
        await run_job(runtime, {})
    rows = await _rows(runtime.sessions)
    assert any(r.profile_state != "released" for r in rows.values()), rows
    assert any(r.network_country == "AU" for r in rows.values()), rows


# --- reporting lag ------------------------------------------------------------------------------


async def _attached(sim: SimulatorProvider, reference: str = "lag-1") -> EsimRef:
    purchase = await sim.create_order(OrderRequest(reference, FRANCE_5GB, 1))
    esim = purchase.esims[0]
    await sim.install(esim.iccid, "Pixel 9", None)
    await sim.attach(esim.iccid, "FR")
    return EsimRef(esim.iccid, esim.provider_esim_id, purchase.provider_order_id)


async def _reported(sim: SimulatorProvider, ref: EsimRef) -> int:
    (report,) = await sim.query_usage([ref])
    return report.used_bytes


async def test_without_a_lag_usage_is_visible_at_once(
    sim: SimulatorProvider, clock: FrozenClock
) -> None:
    assert not sim.reporting_lag
    ref = await _attached(sim)
    assert await _reported(sim, ref) == 0
    await sim.use(ref.iccid, 100)
    (report,) = await sim.query_usage([ref])
    assert report.used_bytes == 100 * MIB
    assert report.last_usage_at == clock.now()


async def test_with_a_lag_usage_shows_once_the_lag_has_passed(
    sessions: Sessions, clock: FrozenClock
) -> None:
    config = AdapterConfig("sim-test", None, {"reporting_lag_seconds": "60"}, clock, sessions)
    sim = SimulatorProvider.from_config(config)
    assert sim.reporting_lag == timedelta(seconds=60)
    ref = await _attached(sim)
    start = clock.now()
    shown = await sim.use(ref.iccid, 100)  # the device side (the command) sees it at once
    assert shown.used_bytes == 100 * MIB

    (report,) = await sim.query_usage([ref])
    assert (report.used_bytes, report.last_usage_at) == (0, None)
    clock.advance(seconds=30)
    await sim.use(ref.iccid, 50)
    clock.advance(seconds=29)  # 59 s after the first use
    assert await _reported(sim, ref) == 0
    clock.advance(seconds=2)  # 61 s: the first use, not yet the second
    (report,) = await sim.query_usage([ref])
    assert (report.used_bytes, report.last_usage_at) == (100 * MIB, start)
    clock.advance(seconds=30)  # 61 s after the second
    (report,) = await sim.query_usage([ref])
    assert report.used_bytes == 150 * MIB
    assert report.last_usage_at == start + timedelta(seconds=30)
    # The plan's state is never lagged; only the usage figures are.
    assert report.raw_status["planState"] == "IN_USE"


async def test_the_lag_covers_usage_recorded_by_another_process(
    sessions: Sessions, clock: FrozenClock
) -> None:
    """`esimgate sim use` runs in its own process: the server's adapter learns of the new usage
    from the database (its time is the eSIM's last usage) and still reports it 60 s late."""
    server = SimulatorProvider(sessions, clock, account="sim-test", reporting_lag_seconds=60)
    command = SimulatorProvider(sessions, clock, account="sim-test")
    ref = await _attached(server)
    assert await _reported(server, ref) == 0  # seen before the use
    clock.advance(seconds=5)
    await command.use(ref.iccid, 100)
    assert await _reported(command, ref) == 100 * MIB  # no lag on that account's other client
    clock.advance(seconds=10)
    assert await _reported(server, ref) == 0
    clock.advance(seconds=51)
    assert await _reported(server, ref) == 100 * MIB


async def test_a_lagged_report_never_goes_backwards(sessions: Sessions, clock: FrozenClock) -> None:
    sim = SimulatorProvider(sessions, clock, account="sim-test", reporting_lag_seconds=60)
    ref = await _attached(sim)
    reported = []
    for _ in range(30):
        await sim.use(ref.iccid, 10)
        clock.advance(seconds=7)
        reported.append(await _reported(sim, ref))
    assert reported == sorted(reported)
    assert 0 < reported[-1] < 300 * MIB
    clock.advance(seconds=61)
    assert await _reported(sim, ref) == 300 * MIB
