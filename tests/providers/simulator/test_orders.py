"""The simulator as an upstream for orders: idempotent, sometimes asynchronous, real eSIM data."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from esimgate.clock import FrozenClock
from esimgate.providers.base import (
    Capability,
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
    OrderRequest,
    Provider,
    Purchase,
    PurchaseState,
)
from esimgate.providers.registry import AdapterConfig
from esimgate.providers.simulator.adapter import SimulatorProvider
from esimgate.providers.simulator.iccid import SMDP_ADDRESS, luhn_valid
from esimgate.providers.simulator.models import SimEsim, SimOrder

FRANCE_5GB = "SIM-FR-5GB-30D"
JAPAN_5GB = "SIM-JP-5GB-30D"
LPA = re.compile(r"^LPA:1\$[^$]+\$[^$]+$")


async def _count(sessions: async_sessionmaker[AsyncSession], model: type[object]) -> int:
    async with sessions() as session:
        return (await session.scalar(select(func.count()).select_from(model))) or 0


def _iccids(purchase: Purchase) -> list[str]:
    return [e.iccid for e in purchase.esims]


async def _cost(sim: SimulatorProvider, code: str) -> Money:
    return next(p.cost for p in await sim.list_packages() if p.provider_code == code)


def test_implements_the_port_with_its_capabilities(sim: SimulatorProvider) -> None:
    assert isinstance(sim, Provider)
    assert sim.capabilities == {
        Capability.CATALOGUE,
        Capability.ORDER,
        Capability.ASYNC_PROVISIONING,
        Capability.ORDER_LOOKUP,
        Capability.USAGE,
        Capability.BATCH_USAGE,
        Capability.TOPUP,
        Capability.CANCEL,
        Capability.SUSPEND,
    }


async def test_completed_order_returns_valid_installable_profiles(sim: SimulatorProvider) -> None:
    purchase = await sim.create_order(OrderRequest("ord-1", FRANCE_5GB, 3))

    assert purchase.state is PurchaseState.COMPLETED
    assert purchase.reference == "ord-1"
    assert purchase.unit_cost == await _cost(sim, FRANCE_5GB)
    assert re.fullmatch(r"SIMO-\d{10}", purchase.provider_order_id or "")
    assert len(purchase.esims) == 3
    for esim in purchase.esims:
        assert re.fullmatch(r"89\d{17}", esim.iccid)
        assert luhn_valid(esim.iccid)
        assert re.fullmatch(r"SIMT\d{16}", esim.provider_esim_id)
        assert esim.smdp_address == SMDP_ADDRESS
        assert re.fullmatch(r"[0-9A-F]{32}", esim.matching_id)
        assert LPA.fullmatch(esim.lpa)
        assert esim.lpa == f"LPA:1${SMDP_ADDRESS}${esim.matching_id}"
        assert esim.confirmation_code_required is False
    assert len({e.iccid for e in purchase.esims}) == 3
    assert len({e.provider_esim_id for e in purchase.esims}) == 3
    assert len({e.matching_id for e in purchase.esims}) == 3


async def test_new_esims_are_released_unused_and_not_yet_counting_validity(
    sim: SimulatorProvider, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await sim.create_order(OrderRequest("ord-1", FRANCE_5GB, 1))
    async with sessions() as session:
        esim = (await session.scalars(select(SimEsim))).one()
    assert (esim.profile_state, esim.line_state, esim.plan_state) == (
        "released",
        "not_active",
        "unused",
    )
    assert esim.used_bytes == 0
    assert esim.total_bytes == 5 * 1024**3
    assert esim.validity_days == 30
    assert esim.activated_at is None
    assert esim.expires_at is None


async def test_unlimited_package_has_no_total(sim: SimulatorProvider) -> None:
    purchase = await sim.create_order(OrderRequest("ord-unl", "SIM-FR-UNL-7D", 1))
    [report] = await sim.query_usage([_as_ref(purchase)])
    assert report.total_bytes is None


async def test_iccids_are_unique_across_orders(sim: SimulatorProvider) -> None:
    purchases = [await sim.create_order(OrderRequest(f"ord-{i}", FRANCE_5GB, 10)) for i in range(5)]
    iccids = [iccid for p in purchases for iccid in _iccids(p)]
    assert len(iccids) == len(set(iccids)) == 50
    assert all(luhn_valid(i) for i in iccids)


async def test_same_reference_returns_the_same_order_and_buys_once(
    sim: SimulatorProvider, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await sim.create_order(OrderRequest("ord-1", FRANCE_5GB, 2))
    again = await sim.create_order(OrderRequest("ord-1", FRANCE_5GB, 2))

    assert again == first
    assert await _count(sessions, SimOrder) == 1
    assert await _count(sessions, SimEsim) == 2


async def test_concurrent_calls_with_one_reference_make_one_order(
    sim: SimulatorProvider, sessions: async_sessionmaker[AsyncSession]
) -> None:
    request = OrderRequest("ord-race", FRANCE_5GB, 2)
    purchases = await asyncio.gather(*(sim.create_order(request) for _ in range(10)))

    assert len({p.provider_order_id for p in purchases}) == 1
    assert len({tuple(_iccids(p)) for p in purchases}) == 1
    assert await _count(sessions, SimOrder) == 1
    assert await _count(sessions, SimEsim) == 2


async def test_japanese_orders_are_pending_until_allocated(
    sim: SimulatorProvider, clock: FrozenClock, sessions: async_sessionmaker[AsyncSession]
) -> None:
    purchase = await sim.create_order(OrderRequest("ord-jp", JAPAN_5GB, 2))
    assert purchase.state is PurchaseState.PENDING
    assert purchase.esims == ()
    assert purchase.provider_order_id is not None
    assert purchase.unit_cost == await _cost(sim, JAPAN_5GB)

    clock.advance(seconds=29)
    pending = await sim.get_order("ord-jp")
    assert pending is not None
    assert pending.state is PurchaseState.PENDING
    assert await _count(sessions, SimEsim) == 0

    clock.advance(seconds=1)
    done = await sim.get_order("ord-jp")
    assert done is not None
    assert done.state is PurchaseState.COMPLETED
    assert done.provider_order_id == purchase.provider_order_id
    assert len(done.esims) == 2
    assert all(luhn_valid(e.iccid) and LPA.fullmatch(e.lpa) for e in done.esims)

    # Allocated once: later lookups and a retried create see the same eSIMs.
    assert await sim.get_order("ord-jp") == done
    assert await sim.create_order(OrderRequest("ord-jp", JAPAN_5GB, 2)) == done
    assert await _count(sessions, SimEsim) == 2


async def test_concurrent_lookups_allocate_a_ready_order_once(
    sim: SimulatorProvider, clock: FrozenClock, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await sim.create_order(OrderRequest("ord-jp", JAPAN_5GB, 3))
    clock.advance(seconds=31)
    results = await asyncio.gather(*(sim.get_order("ord-jp") for _ in range(5)))
    assert len({tuple(_iccids(p)) for p in results if p is not None}) == 1
    assert await _count(sessions, SimEsim) == 3


async def test_async_delay_comes_from_the_credentials(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    config = AdapterConfig(
        "sim-fast", None, {"async_delay_seconds": "5", "seed": "7"}, clock, sessions
    )
    sim = SimulatorProvider.from_config(config)
    assert (sim.account, sim.seed, sim.latency_ms) == ("sim-fast", 7, 0)
    await sim.create_order(OrderRequest("ord-jp", JAPAN_5GB, 1))
    clock.advance(seconds=5)
    done = await sim.get_order("ord-jp")
    assert done is not None
    assert done.state is PurchaseState.COMPLETED


async def test_regional_package_covering_japan_is_immediate(sim: SimulatorProvider) -> None:
    purchase = await sim.create_order(OrderRequest("ord-asia", "SIM-ASIA-5GB-30D", 1))
    assert purchase.state is PurchaseState.COMPLETED


async def test_get_order_unknown_reference_is_none(sim: SimulatorProvider) -> None:
    assert await sim.get_order("nope") is None


async def test_accounts_are_separate_upstreams(
    sim: SimulatorProvider, sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    other = SimulatorProvider(sessions, clock, account="sim-other")
    mine = await sim.create_order(OrderRequest("ord-1", FRANCE_5GB, 1))

    assert await other.get_order("ord-1") is None
    theirs = await other.create_order(OrderRequest("ord-1", FRANCE_5GB, 1))
    assert set(_iccids(theirs)).isdisjoint(_iccids(mine))
    assert await other.query_usage([_as_ref(mine)]) == []


@pytest.mark.parametrize(
    ("code", "quantity", "reason"),
    [
        ("SIM-XX-1GB-7D", 1, LogicalReason.INVALID_PACKAGE),
        ("SIM-TOPUP-FR-1GB-7D", 1, LogicalReason.INVALID_PACKAGE),
        (FRANCE_5GB, 0, LogicalReason.REJECTED),
        (FRANCE_5GB, 11, LogicalReason.REJECTED),
    ],
)
async def test_refused_orders_buy_nothing(
    sim: SimulatorProvider,
    sessions: async_sessionmaker[AsyncSession],
    code: str,
    quantity: int,
    reason: LogicalReason,
) -> None:
    with pytest.raises(LogicalError) as refused:
        await sim.create_order(OrderRequest("ord-bad", code, quantity))
    assert refused.value.reason is reason
    assert refused.value.provider == "simulator"
    assert await _count(sessions, SimOrder) == 0
    assert await sim.get_order("ord-bad") is None


async def test_price_guard(
    sim: SimulatorProvider, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cost = await _cost(sim, FRANCE_5GB)
    stale = Money(cost.amount_e4 - 1, "USD")
    with pytest.raises(LogicalError) as refused:
        await sim.create_order(OrderRequest("ord-1", FRANCE_5GB, 1, expected_unit_cost=stale))
    assert refused.value.reason is LogicalReason.PRICE_CHANGED
    assert await _count(sessions, SimOrder) == 0

    ok = await sim.create_order(OrderRequest("ord-1", FRANCE_5GB, 1, expected_unit_cost=cost))
    assert ok.state is PurchaseState.COMPLETED


async def test_latency_is_applied_to_port_calls(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    sim = SimulatorProvider(sessions, clock, latency_ms=50)
    started = time.monotonic()
    assert await sim.get_order("nope") is None
    assert time.monotonic() - started >= 0.045


async def test_a_lost_order_race_returns_the_winners_order(
    sim: SimulatorProvider,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What PostgreSQL allows and SQLite's write lock hides: two calls both miss the lookup, and
    # the unique key turns the second insert into a read of the first order.
    first = await sim.create_order(OrderRequest("ord-1", FRANCE_5GB, 1))
    lookup = sim._order
    misses = iter([True])

    async def missing_once(session: AsyncSession, reference: str) -> SimOrder | None:
        return None if next(misses, False) else await lookup(session, reference)

    monkeypatch.setattr(sim, "_order", missing_once)
    assert await sim.create_order(OrderRequest("ord-1", FRANCE_5GB, 1)) == first
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SimOrder)) == 1


def _as_ref(purchase: Purchase) -> EsimRef:
    esim = purchase.esims[0]
    return EsimRef(esim.iccid, esim.provider_esim_id, purchase.provider_order_id)
