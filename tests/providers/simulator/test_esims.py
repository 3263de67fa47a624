"""The simulator's eSIM lifecycle: device events, usage reports, top-ups and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from esimgate.clock import FrozenClock
from esimgate.providers.base import (
    EsimRef,
    LogicalError,
    LogicalReason,
    OrderRequest,
    PurchaseState,
    TopUpRequest,
)
from esimgate.providers.simulator.adapter import SimulatorProvider
from esimgate.providers.simulator.catalogue import GIB
from esimgate.providers.simulator.iccid import luhn_valid
from esimgate.providers.simulator.models import SimTopUp
from esimgate.providers.simulator.networks import COUNTRIES_BY_CODE

FRANCE_5GB = "SIM-FR-5GB-30D"  # rechargeable
FRANCE_10GB = "SIM-FR-10GB-30D"
FRANCE_TOPUP_1GB = "SIM-TOPUP-FR-1GB-7D"  # applies to FR 3/5/10/20 GB packages
MIB = 1024**2


async def _buy(sim: SimulatorProvider, code: str = FRANCE_5GB, reference: str = "ord-1") -> EsimRef:
    purchase = await sim.create_order(OrderRequest(reference, code, 1))
    assert purchase.state is PurchaseState.COMPLETED
    esim = purchase.esims[0]
    return EsimRef(esim.iccid, esim.provider_esim_id, purchase.provider_order_id)


async def _refused(call: Awaitable[object]) -> LogicalReason:
    with pytest.raises(LogicalError) as refused:
        await call
    return refused.value.reason


async def _cost_e4(sim: SimulatorProvider, code: str) -> int:
    return next(p.cost.amount_e4 for p in await sim.list_packages() if p.provider_code == code)


# --- device events ------------------------------------------------------------------------------


async def test_install_records_the_device_and_enables_the_profile(sim: SimulatorProvider) -> None:
    ref = await _buy(sim)
    report = await sim.install(ref.iccid, "iPhone 15", "356938035643809")

    assert report.raw_status == {
        "profileState": "ENABLED",
        "lineState": "NOT_ACTIVE",
        "planState": "UNUSED",
    }
    assert (report.device_model, report.device_imei) == ("iPhone 15", "356938035643809")
    assert report.activated_at is None  # installing does not start the validity

    assert await _refused(sim.install(ref.iccid)) is LogicalReason.NOT_ALLOWED


async def test_install_makes_up_a_valid_imei_and_rejects_a_malformed_one(
    sim: SimulatorProvider,
) -> None:
    ref = await _buy(sim)
    with pytest.raises(ValueError, match="IMEI"):
        await sim.install(ref.iccid, "Pixel 8", "356938035643808")  # bad check digit
    report = await sim.install(ref.iccid)
    assert report.device_imei is not None
    assert len(report.device_imei) == 15
    assert luhn_valid(report.device_imei)


async def test_first_attach_activates_on_a_real_network(
    sim: SimulatorProvider, clock: FrozenClock
) -> None:
    ref = await _buy(sim)
    await sim.install(ref.iccid)
    report = await sim.attach(ref.iccid)

    assert report.raw_status["lineState"] == "ACTIVE"
    assert report.raw_status["planState"] == "IN_USE"
    assert report.activated_at == clock.now()
    assert report.expires_at == clock.now() + timedelta(days=30)
    network = report.last_network
    assert network is not None
    assert network.country_code == "FR"
    real = {(n.operator, n.mcc, n.mnc) for n in COUNTRIES_BY_CODE["FR"].networks}
    assert (network.operator, network.mcc, network.mnc) in real
    assert network.connection_type in ("5G", "4G - LTE")

    # Attaching again later moves nothing: validity counts from the first attach.
    clock.advance(days=2)
    again = await sim.attach(ref.iccid)
    assert again.activated_at == report.activated_at
    assert again.expires_at == report.expires_at


async def test_attach_in_a_chosen_country_of_a_regional_package(sim: SimulatorProvider) -> None:
    ref = await _buy(sim, "SIM-EU-5GB-30D")
    await sim.install(ref.iccid)
    report = await sim.attach(ref.iccid, "de")
    assert report.last_network is not None
    assert report.last_network.country_code == "DE"
    assert report.last_network.mcc == "262"

    assert await _refused(sim.attach(ref.iccid, "JP")) is LogicalReason.NOT_ALLOWED


async def test_attach_needs_an_installed_profile(sim: SimulatorProvider) -> None:
    ref = await _buy(sim)
    assert await _refused(sim.attach(ref.iccid)) is LogicalReason.NOT_ALLOWED


async def test_use_counts_binary_megabytes_and_depletes_at_the_total(
    sim: SimulatorProvider, clock: FrozenClock
) -> None:
    ref = await _buy(sim)
    await sim.install(ref.iccid)
    await sim.attach(ref.iccid)

    report = await sim.use(ref.iccid, 1024)
    assert report.used_bytes == GIB
    assert report.last_usage_at == clock.now()
    assert report.raw_status["planState"] == "IN_USE"

    report = await sim.use(ref.iccid, 10_000)
    assert report.used_bytes == report.total_bytes == 5 * GIB
    assert report.raw_status["planState"] == "DEPLETED"
    assert await _refused(sim.use(ref.iccid, 1)) is LogicalReason.NOT_ALLOWED


async def test_use_needs_an_attached_esim_and_a_positive_amount(sim: SimulatorProvider) -> None:
    ref = await _buy(sim)
    assert await _refused(sim.use(ref.iccid, 10)) is LogicalReason.NOT_ALLOWED
    with pytest.raises(ValueError, match="positive"):
        await sim.use(ref.iccid, 0)


async def test_unlimited_plans_never_deplete(sim: SimulatorProvider) -> None:
    ref = await _buy(sim, "SIM-FR-UNL-7D")
    await sim.install(ref.iccid)
    await sim.attach(ref.iccid)
    report = await sim.use(ref.iccid, 100_000)
    assert report.total_bytes is None
    assert report.used_bytes == 100_000 * MIB
    assert report.raw_status["planState"] == "IN_USE"


async def test_expire_ends_the_plan_now(sim: SimulatorProvider, clock: FrozenClock) -> None:
    ref = await _buy(sim)
    await sim.install(ref.iccid)
    await sim.attach(ref.iccid)
    clock.advance(days=3)
    report = await sim.expire(ref.iccid)
    assert report.raw_status["planState"] == "EXPIRED"
    assert report.expires_at == clock.now()
    assert await _refused(sim.use(ref.iccid, 1)) is LogicalReason.NOT_ALLOWED


async def test_time_alone_expires_a_plan(sim: SimulatorProvider, clock: FrozenClock) -> None:
    ref = await _buy(sim)
    await sim.install(ref.iccid)
    await sim.attach(ref.iccid)
    clock.advance(days=30)
    [report] = await sim.query_usage([ref])
    assert report.raw_status["planState"] == "EXPIRED"


async def test_delete_removes_the_profile_for_good(sim: SimulatorProvider) -> None:
    ref = await _buy(sim)
    assert await _refused(sim.delete(ref.iccid)) is LogicalReason.NOT_ALLOWED  # not installed
    await sim.install(ref.iccid)
    report = await sim.delete(ref.iccid)
    assert report.raw_status["profileState"] == "DELETED"
    assert await _refused(sim.attach(ref.iccid)) is LogicalReason.NOT_ALLOWED


async def test_device_events_on_an_unknown_iccid(sim: SimulatorProvider) -> None:
    assert await _refused(sim.install("8999901000000000000")) is LogicalReason.NOT_FOUND


# --- usage --------------------------------------------------------------------------------------


async def test_query_usage_reports_a_batch_in_the_simulators_own_words(
    sim: SimulatorProvider, clock: FrozenClock
) -> None:
    fresh = await _buy(sim, reference="ord-1")
    busy = await _buy(sim, reference="ord-2")
    await sim.install(busy.iccid, "Galaxy S24", "356938035643809")
    await sim.attach(busy.iccid)
    await sim.use(busy.iccid, 512)
    unknown = EsimRef("8999901999999999990", "SIMT9999999999999999")
    by_iccid_only = EsimRef(fresh.iccid, "")

    reports = await sim.query_usage([busy, unknown, fresh, by_iccid_only])

    assert [r.esim for r in reports] == [busy, fresh]  # unknown absent, duplicates once
    busy_report, fresh_report = reports
    assert fresh_report.raw_status == {
        "profileState": "RELEASED",
        "lineState": "NOT_ACTIVE",
        "planState": "UNUSED",
    }
    assert (fresh_report.used_bytes, fresh_report.total_bytes) == (0, 5 * GIB)
    assert fresh_report.activated_at is fresh_report.expires_at is None
    assert fresh_report.device_model is None
    assert fresh_report.observed_at == clock.now()
    assert busy_report.raw_status == {
        "profileState": "ENABLED",
        "lineState": "ACTIVE",
        "planState": "IN_USE",
    }
    assert busy_report.used_bytes == 512 * MIB
    assert busy_report.device_model == "Galaxy S24"
    assert busy_report.activated_at == clock.now()


async def test_query_usage_limits_the_batch(sim: SimulatorProvider) -> None:
    assert await sim.query_usage([]) == []
    too_many = [EsimRef(str(i), f"SIMT{i:016d}") for i in range(sim.max_usage_batch + 1)]
    assert await _refused(sim.query_usage(too_many)) is LogicalReason.REJECTED


# --- top-ups ------------------------------------------------------------------------------------


async def test_top_up_before_activation_adds_data_and_validity(sim: SimulatorProvider) -> None:
    ref = await _buy(sim)
    result = await sim.top_up(TopUpRequest("top-1", ref, FRANCE_TOPUP_1GB))

    assert result.reference == "top-1"
    assert result.state is PurchaseState.COMPLETED
    assert result.unit_cost is not None
    assert result.unit_cost.amount_e4 == await _cost_e4(sim, FRANCE_TOPUP_1GB)
    assert result.total_bytes == 6 * GIB
    assert result.expires_at is None  # still counts from the first attach...

    await sim.install(ref.iccid)
    attached = await sim.attach(ref.iccid)
    assert attached.activated_at is not None
    assert attached.expires_at == attached.activated_at + timedelta(days=30 + 7)  # ...but longer


async def test_top_up_after_activation_moves_the_expiry(
    sim: SimulatorProvider, clock: FrozenClock
) -> None:
    ref = await _buy(sim)
    await sim.install(ref.iccid)
    first = await sim.attach(ref.iccid)
    assert first.expires_at is not None
    clock.advance(days=10)

    result = await sim.top_up(TopUpRequest("top-1", ref, FRANCE_TOPUP_1GB, quantity=2))
    assert result.total_bytes == 7 * GIB
    assert result.expires_at == first.expires_at + timedelta(days=14)


async def test_top_up_revives_a_depleted_plan(sim: SimulatorProvider) -> None:
    ref = await _buy(sim)
    await sim.install(ref.iccid)
    await sim.attach(ref.iccid)
    await sim.use(ref.iccid, 5 * 1024)
    await sim.top_up(TopUpRequest("top-1", ref, FRANCE_TOPUP_1GB))

    [report] = await sim.query_usage([ref])
    assert report.raw_status["planState"] == "IN_USE"
    assert (report.used_bytes, report.total_bytes) == (5 * GIB, 6 * GIB)
    await sim.use(ref.iccid, 100)


async def test_top_up_is_idempotent_on_our_reference(
    sim: SimulatorProvider, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ref = await _buy(sim)
    request = TopUpRequest("top-1", ref, FRANCE_TOPUP_1GB)
    first = await sim.top_up(request)
    results = await asyncio.gather(*(sim.top_up(request) for _ in range(5)))

    assert all(r == first for r in results)
    [report] = await sim.query_usage([ref])
    assert report.total_bytes == 6 * GIB
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SimTopUp)) == 1


async def test_top_up_refusals(sim: SimulatorProvider) -> None:
    ref = await _buy(sim)
    small = await _buy(sim, "SIM-FR-1GB-7D", reference="ord-small")  # takes no top-ups
    unknown = EsimRef("8999901999999999990", "SIMT9999999999999999")

    async def reason(target: EsimRef, code: str, quantity: int = 1) -> LogicalReason:
        return await _refused(sim.top_up(TopUpRequest("top-x", target, code, quantity)))

    assert await reason(unknown, FRANCE_TOPUP_1GB) is LogicalReason.NOT_FOUND
    assert await reason(ref, "SIM-TOPUP-XX-1GB-7D") is LogicalReason.INVALID_PACKAGE
    assert await reason(ref, FRANCE_10GB) is LogicalReason.INVALID_PACKAGE  # not a top-up
    assert await reason(ref, "SIM-TOPUP-DE-1GB-7D") is LogicalReason.INVALID_PACKAGE
    assert await reason(small, FRANCE_TOPUP_1GB) is LogicalReason.INVALID_PACKAGE
    assert await reason(ref, FRANCE_TOPUP_1GB, quantity=0) is LogicalReason.REJECTED


@pytest.mark.parametrize("ending", ["cancel", "delete", "expire"])
async def test_no_top_up_for_an_ended_esim(sim: SimulatorProvider, ending: str) -> None:
    ref = await _buy(sim)
    if ending == "cancel":
        assert (await sim.cancel(ref)).cancelled
    elif ending == "delete":
        await sim.install(ref.iccid)
        await sim.delete(ref.iccid)
    else:
        await sim.expire(ref.iccid)
    reason = await _refused(sim.top_up(TopUpRequest("top-1", ref, FRANCE_TOPUP_1GB)))
    assert reason is LogicalReason.NOT_ALLOWED


async def test_a_lost_top_up_race_returns_the_winners_outcome(
    sim: SimulatorProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What PostgreSQL allows and SQLite's write lock hides: two calls both miss the lookup.
    ref = await _buy(sim)
    request = TopUpRequest("top-1", ref, FRANCE_TOPUP_1GB)
    first = await sim.top_up(request)
    lookup = sim._topup
    misses = iter([True])

    async def missing_once(session: AsyncSession, reference: str) -> SimTopUp | None:
        return None if next(misses, False) else await lookup(session, reference)

    monkeypatch.setattr(sim, "_topup", missing_once)
    assert await sim.top_up(request) == first
    [report] = await sim.query_usage([ref])
    assert report.total_bytes == 6 * GIB


# --- cancel -------------------------------------------------------------------------------------


async def test_cancel_an_untouched_esim_refunds_its_cost(sim: SimulatorProvider) -> None:
    ref = await _buy(sim)
    result = await sim.cancel(EsimRef(ref.iccid, ref.provider_esim_id))

    assert result.cancelled is True
    assert result.esim == ref
    assert result.refund is not None
    assert result.refund.amount_e4 == await _cost_e4(sim, FRANCE_5GB)
    [report] = await sim.query_usage([ref])
    assert report.raw_status["lineState"] == "CANCELLED"
    assert report.raw_status["planState"] == "CANCELLED"

    again = await sim.cancel(ref)
    assert (again.cancelled, again.refund, again.reason) == (False, None, "already cancelled")
    assert await _refused(sim.install(ref.iccid)) is LogicalReason.NOT_ALLOWED


async def test_cancel_refuses_an_installed_or_expired_esim(sim: SimulatorProvider) -> None:
    installed = await _buy(sim, reference="ord-1")
    await sim.install(installed.iccid)
    expired = await _buy(sim, reference="ord-2")
    await sim.expire(expired.iccid)

    for ref, reason in ((installed, "installed"), (expired, "expired")):
        result = await sim.cancel(ref)
        assert (result.cancelled, result.refund, result.reason) == (False, None, reason)


async def test_cancel_unknown_esim(sim: SimulatorProvider) -> None:
    unknown = EsimRef("8999901999999999990", "SIMT9999999999999999")
    assert await _refused(sim.cancel(unknown)) is LogicalReason.NOT_FOUND
