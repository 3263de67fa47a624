"""Routing to the cheapest healthy upstream, failover with no second charge, and the circuit
breaker that refuses orders before any money moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.orders.models import Order
from esimgate.providers.models import ProviderAccount
from esimgate.runtime import Runtime
from esimgate.wallet.models import LedgerEntry
from tests.catalog.test_sync import add_provider, default_simulator, sync
from tests.conftest import _truncate
from tests.fakes.faulty import FaultyProvider
from tests.orders.test_place_order import ORDER
from tests.support import SignedClient


@pytest.fixture
async def two_upstreams(runtime: Runtime) -> AsyncIterator[tuple[int, int]]:
    """The default simulator plus a second one (another seed: same products, other costs)."""
    default, _ = await default_simulator(runtime)
    second = await add_provider(runtime, "backup-simulator", seed="7")
    await sync(runtime)
    try:
        yield default.id, second
    finally:
        await _truncate(runtime)  # orders reference the extra account: clear them first
        from sqlalchemy import delete

        async with runtime.sessions() as session, session.begin():
            await session.execute(
                delete(PackageOffer).where(PackageOffer.provider_account_id == second)
            )
            await session.execute(delete(ProviderAccount).where(ProviderAccount.id == second))
        await sync(runtime)


async def shared_package(runtime: Runtime, cheap: int, dear: int) -> tuple[str, int, int]:
    """A Turkish package both upstreams offer, where ``cheap`` is the cheaper one."""
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(CatalogPackage.code, PackageOffer.provider_account_id, PackageOffer.cost_e4)
                .join(PackageOffer, PackageOffer.package_id == CatalogPackage.id)
                .where(CatalogPackage.region == "Turkey", CatalogPackage.is_topup.is_(False))
            )
        ).all()
    costs: dict[str, dict[int, int]] = {}
    for code, account, cost in rows:
        costs.setdefault(code, {})[account] = cost
    for code, by_account in sorted(costs.items()):
        if len(by_account) == 2 and by_account[cheap] < by_account[dear]:
            return code, by_account[cheap], by_account[dear]
    raise AssertionError("no package where the first upstream is cheaper")


async def test_cheapest_then_failover_without_a_second_charge(
    api: SignedClient, runtime: Runtime, two_upstreams: tuple[int, int]
) -> None:
    first, second = two_upstreams
    candidates = []
    for cheap, dear in ((first, second), (second, first)):
        try:
            candidates.append((cheap, dear, *(await shared_package(runtime, cheap, dear))))
        except AssertionError:
            continue
    cheap, dear, code, cheap_cost, dear_cost = candidates[0]
    async with runtime.sessions() as session:
        cheap_account = await session.get(ProviderAccount, cheap)
    assert cheap_account is not None
    faulty = FaultyProvider(runtime.providers.adapter(cheap_account))
    runtime.providers.override(cheap, faulty)

    normal = (await api.post(ORDER, {"packageCode": code})).json()
    assert normal["status"] == "completed"
    async with runtime.sessions() as session:
        order = (await session.execute(select(Order))).scalar_one()
    assert (order.provider_account_id, order.unit_cost_e4) == (cheap, cheap_cost)

    faulty.create_mode = "unavailable"
    moved = (await api.post(ORDER, {"packageCode": code})).json()
    assert moved["status"] == "completed", moved
    assert moved["amount"] == normal["amount"]  # the customer's price does not change
    async with runtime.sessions() as session:
        latest = (
            await session.execute(select(Order).order_by(Order.id.desc()).limit(1))
        ).scalar_one()
        debits = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "reserve")
        )
    assert (latest.provider_account_id, latest.unit_cost_e4) == (dear, dear_cost)
    assert debits == 2 and faulty.upstream_creates == 1


async def test_circuit_breaker_refuses_before_money_moves_and_recovers(
    api: SignedClient, runtime: Runtime, clock: Any
) -> None:
    default, _ = await default_simulator(runtime)
    faulty = FaultyProvider(runtime.providers.adapter(default))
    runtime.providers.override(default.id, faulty)
    async with runtime.sessions() as session:
        code = await session.scalar(
            select(CatalogPackage.code).where(
                CatalogPackage.region == "Turkey", CatalogPackage.is_topup.is_(False)
            )
        )
    faulty.create_mode = "unavailable"
    for _ in range(5):
        failed = await api.post(ORDER, {"packageCode": code})
        assert failed.status_code == 502, failed.text
    async with runtime.sessions() as session:
        entries = await session.scalar(select(func.count()).select_from(LedgerEntry))
    calls = faulty.create_calls
    refused = await api.post(ORDER, {"packageCode": code})
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "SERVICE_UNAVAILABLE"
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == entries
    assert faulty.create_calls == calls  # no upstream call either
    metrics = (await api.client.get("/metrics")).text
    assert 'esimgate_provider_circuit_open{provider="simulator"} 1' in metrics

    clock.advance(seconds=30)
    faulty.create_mode = "ok"
    probe = await api.post(ORDER, {"packageCode": code})
    assert probe.status_code == 200 and probe.json()["status"] == "completed", probe.text
    metrics = (await api.client.get("/metrics")).text
    assert 'esimgate_provider_circuit_open{provider="simulator"} 0' in metrics
    assert 'esimgate_orders{provider="simulator",status="failed"} 5' in metrics
    assert (await api.post(ORDER, {"packageCode": code})).status_code == 200
