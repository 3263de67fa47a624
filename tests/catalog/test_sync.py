"""Catalogue sync: provider packages become our packages, with their cost snapshot.

The session's catalogue (provider_accounts, catalog_packages, package_offers) is shared by every
test; tests here that add providers or change offers run under ``restore_catalogue``, which removes
what they added and re-syncs the default simulator afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from esimgate.catalog.identity import identity_key, package_code
from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.catalog.repository import CatalogRepository
from esimgate.catalog.service import SyncReport
from esimgate.providers.base import (
    Capability,
    Coverage,
    Money,
    Network,
    PackageKind,
    ProviderPackage,
)
from esimgate.providers.models import ProviderAccount
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.providers.service import SIMULATOR, sync_catalogue
from esimgate.runtime import Runtime
from tests.support import SignedClient

GIB = 1024**3
PACKAGES = "/api/v1/business/esims/packages"


class FakeProvider:
    """A provider whose catalogue the test edits between syncs."""

    kind = "fake"
    capabilities = frozenset({Capability.CATALOGUE})
    max_usage_batch = 1

    def __init__(self, packages: Sequence[ProviderPackage] = ()) -> None:
        self.packages = list(packages)

    async def list_packages(self) -> Sequence[ProviderPackage]:
        return tuple(self.packages)

    async def create_order(self, request: Any) -> Any:
        raise NotImplementedError

    async def get_order(self, reference: str, provider_order_id: str | None = None) -> Any:
        raise NotImplementedError

    async def query_usage(self, esims: Any) -> Any:
        raise NotImplementedError

    async def top_up(self, request: Any) -> Any:
        raise NotImplementedError

    async def cancel(self, esim: Any) -> Any:
        raise NotImplementedError


def unique_package(provider_code: str, cost_e4: int, *, days: int = 9) -> ProviderPackage:
    """A product no simulator sells (Antarctica is in no simulator coverage)."""
    return ProviderPackage(
        provider_code=provider_code,
        name=f"Antarctica 2GB {days} Days",
        kind=PackageKind.LOCAL,
        region="Antarctica",
        coverage=(Coverage("AQ", "Antarctica", (Network("Polar Mobile", "901", "99"),)),),
        data_bytes=2 * GIB,
        validity_days=days,
        cost=Money(cost_e4, "USD"),
        rechargeable=True,
    )


def code_of(package: ProviderPackage) -> str:
    return package_code(identity_key(package), is_topup=package.is_topup)


# --- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
async def restore_catalogue(runtime: Runtime) -> AsyncIterator[None]:
    """Undo what a test adds: its provider accounts, their offers, packages only they created."""
    async with runtime.sessions() as session:
        accounts_before = set(await session.scalars(select(ProviderAccount.id)))
        last_package = await session.scalar(select(func.max(CatalogPackage.id))) or 0
    yield
    async with runtime.sessions() as session, session.begin():
        extra = set(await session.scalars(select(ProviderAccount.id))) - accounts_before
        if extra:
            await session.execute(
                delete(PackageOffer).where(PackageOffer.provider_account_id.in_(extra))
            )
            await session.execute(delete(ProviderAccount).where(ProviderAccount.id.in_(extra)))
        offered = select(PackageOffer.package_id)
        await session.execute(
            delete(CatalogPackage).where(
                CatalogPackage.id > last_package, CatalogPackage.id.not_in(offered)
            )
        )
        await sync_catalogue(session, runtime.clock, runtime.providers)


async def default_simulator(runtime: Runtime) -> tuple[ProviderAccount, Sequence[ProviderPackage]]:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name(SIMULATOR)
    assert account is not None, "the session catalogue has no default simulator account"
    return account, await runtime.providers.adapter(account).list_packages()


async def add_provider(
    runtime: Runtime, name: str, *, seed: str | None = None, adapter: FakeProvider | None = None
) -> int:
    credentials = runtime.box.encrypt(json.dumps({"seed": seed})) if seed is not None else None
    async with runtime.sessions() as session, session.begin():
        account = await ProviderAccountRepository(session).add(
            ProviderAccount(
                name=name,
                kind="simulator",
                credentials_encrypted=credentials,
                enabled=True,
                created_at=runtime.clock.now(),
            )
        )
    if adapter is not None:
        runtime.providers.override(account.id, adapter)
    return account.id


async def sync(runtime: Runtime) -> dict[str, SyncReport]:
    async with runtime.sessions() as session, session.begin():
        reports = await sync_catalogue(session, runtime.clock, runtime.providers)
    return {report.provider: report for report in reports}


async def listing(runtime: Runtime, *, topups: bool = False) -> dict[str, int]:
    """Package code → listed (cheapest) cost in 1/10000 USD, as the priced catalogue sees it."""
    async with runtime.sessions() as session:
        rows, total = await CatalogRepository(session).search(
            currency="USD", search=None, kind=None, topups=topups, offset=0, limit=100_000
        )
    assert total == len(rows)
    return {row.package.code: row.cost_e4 for row in rows}


async def offers_of(runtime: Runtime, account_id: int) -> dict[str, PackageOffer]:
    async with runtime.sessions() as session:
        return await CatalogRepository(session).offers_of(account_id)


async def package_by_code(runtime: Runtime, code: str) -> CatalogPackage:
    async with runtime.sessions() as session:
        package = await session.scalar(select(CatalogPackage).where(CatalogPackage.code == code))
    assert package is not None, code
    return package


def by_name(packages: Sequence[ProviderPackage], name: str) -> ProviderPackage:
    matches = [p for p in packages if p.name == name]
    assert len(matches) == 1, name
    return matches[0]


# --- the synced simulator catalogue -------------------------------------------------------------


async def test_synced_catalogue_has_unique_unprefixed_codes(runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        packages = (await session.scalars(select(CatalogPackage))).all()
    base = [p for p in packages if not p.is_topup and p.active]
    topups = [p for p in packages if p.is_topup]
    assert len(base) >= 200, len(base)
    assert len(topups) > 0
    codes = [p.code for p in packages]
    assert len(codes) == len(set(codes))
    for package in packages:
        assert not package.code.startswith("SIM-") and "-" not in package.code, package.code
        pattern = r"TOPUP_[A-Z]{9}" if package.is_topup else r"[A-Z]{9}"
        assert re.fullmatch(pattern, package.code), package.code


async def test_every_simulator_package_is_one_offer_with_its_cost(runtime: Runtime) -> None:
    account, upstream = await default_simulator(runtime)
    offers = await offers_of(runtime, account.id)
    async with runtime.sessions() as session:
        codes = dict((await session.execute(select(CatalogPackage.id, CatalogPackage.code))).all())
    assert set(offers) == {p.provider_code for p in upstream}
    for item in upstream:
        offer = offers[item.provider_code]
        assert offer.active, item.provider_code
        assert codes[offer.package_id] == code_of(item), item.provider_code
        assert (offer.cost_e4, offer.currency) == (item.cost.amount_e4, item.cost.currency)


async def test_resync_is_idempotent(runtime: Runtime) -> None:
    _, upstream = await default_simulator(runtime)

    async def snapshot() -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
        async with runtime.sessions() as session:
            packages = await session.execute(
                select(CatalogPackage.id, CatalogPackage.code, CatalogPackage.active)
            )
            offers = await session.execute(
                select(
                    PackageOffer.id,
                    PackageOffer.package_id,
                    PackageOffer.provider_code,
                    PackageOffer.cost_e4,
                    PackageOffer.active,
                )
            )
            return {tuple(r) for r in packages}, {tuple(r) for r in offers}

    before = await snapshot()
    reports = await sync(runtime)
    report = reports[SIMULATOR]
    assert (report.added, report.updated, report.delisted) == (0, 0, 0)
    assert report.unchanged == len(upstream)
    assert report.price_changes == []
    assert await snapshot() == before


# --- several providers --------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_catalogue")
async def test_second_provider_maps_onto_the_same_codes_at_the_cheaper_cost(
    runtime: Runtime, api: SignedClient
) -> None:
    default, upstream = await default_simulator(runtime)
    async with runtime.sessions() as session:
        packages_before = await session.scalar(select(func.count()).select_from(CatalogPackage))
    second = await add_provider(runtime, "simulator-seed-7", seed="7")
    async with runtime.sessions() as session:
        account = await session.get(ProviderAccount, second)
    assert account is not None
    other = await runtime.providers.adapter(account).list_packages()
    assert {p.provider_code for p in other} == {p.provider_code for p in upstream}

    reports = await sync(runtime)
    report = reports["simulator-seed-7"]
    assert (report.added, report.updated, report.delisted) == (len(other), 0, 0)
    assert reports[SIMULATOR].unchanged == len(upstream)
    async with runtime.sessions() as session:
        packages_after = await session.scalar(select(func.count()).select_from(CatalogPackage))
    assert packages_after == packages_before  # no new package: the same products, same codes

    first_offers, second_offers = (
        await offers_of(runtime, default.id),
        await offers_of(runtime, second),
    )
    for code, offer in second_offers.items():
        assert offer.package_id == first_offers[code].package_id, code

    # The listed cost of each package is the cheaper of the two offers.
    costs_default = {code_of(p): p.cost.amount_e4 for p in upstream if not p.is_topup}
    costs_other = {code_of(p): p.cost.amount_e4 for p in other if not p.is_topup}
    listed = await listing(runtime)
    assert set(costs_default) <= set(listed)
    cheaper_at_7 = [c for c in costs_default if costs_other[c] < costs_default[c]]
    cheaper_at_default = [c for c in costs_default if costs_other[c] > costs_default[c]]
    assert cheaper_at_7 and cheaper_at_default  # the minimum is taken in both directions
    for code, cost in costs_default.items():
        assert listed[code] == min(cost, costs_other[code]), code

    # … and that is what the API prices from.
    japan = by_name(upstream, "Japan 5GB 30 Days")
    cheapest = min(japan.cost.amount_e4, by_name(other, "Japan 5GB 30 Days").cost.amount_e4)
    response = await api.get(PACKAGES, params={"search": "Japan 5GB 30 Days"})
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]["packages"]
    assert item["package_code"] == code_of(japan)
    cents = (cheapest + 50) // 100  # half up to the cent, 0 % markup
    assert item["cost"] == float(Decimal(cents) / 100), response.text


@pytest.mark.usefixtures("restore_catalogue")
async def test_price_changes_are_reported_and_update_the_offer(runtime: Runtime) -> None:
    _, upstream = await default_simulator(runtime)
    japan = by_name(upstream, "Japan 3GB 15 Days")
    shared = dataclasses.replace(japan, provider_code="FAKE-JP-3", cost=Money(90_000, "USD"))
    own = unique_package("FAKE-AQ-2", 12_345)
    fake = FakeProvider([shared, own])
    account_id = await add_provider(runtime, "fake-prices", adapter=fake)

    first = (await sync(runtime))["fake-prices"]
    assert (first.added, first.updated, first.unchanged, first.delisted) == (2, 0, 0, 0)
    assert first.price_changes == []

    fake.packages = [
        dataclasses.replace(shared, cost=Money(90_777, "USD")),
        dataclasses.replace(own, cost=Money(20_000, "USD")),
    ]
    second = (await sync(runtime))["fake-prices"]
    assert second.price_changes == [
        (code_of(japan), 90_000, 90_777),
        (code_of(own), 12_345, 20_000),
    ]
    assert (second.added, second.updated, second.unchanged, second.delisted) == (0, 2, 0, 0)
    offers = await offers_of(runtime, account_id)
    assert {code: o.cost_e4 for code, o in offers.items()} == {
        "FAKE-JP-3": 90_777,
        "FAKE-AQ-2": 20_000,
    }
    listed = await listing(runtime)
    assert listed[code_of(own)] == 20_000
    assert listed[code_of(japan)] == japan.cost.amount_e4  # the simulator is still cheaper

    third = (await sync(runtime))["fake-prices"]
    assert (third.added, third.updated, third.unchanged, third.delisted) == (0, 0, 2, 0)
    assert third.price_changes == []


@pytest.mark.usefixtures("restore_catalogue")
async def test_delisted_offers_are_deactivated_and_orphans_leave_the_listing(
    runtime: Runtime, api: SignedClient
) -> None:
    _, upstream = await default_simulator(runtime)
    japan = by_name(upstream, "Japan 1GB 7 Days")
    cheap_japan = dataclasses.replace(
        japan, provider_code="FAKE-JP-1", cost=Money(japan.cost.amount_e4 - 1_000, "USD")
    )
    own = unique_package("FAKE-AQ-2", 30_000)
    fake = FakeProvider([cheap_japan, own])
    account_id = await add_provider(runtime, "fake-delist", adapter=fake)
    await sync(runtime)
    listed = await listing(runtime)
    assert listed[code_of(own)] == 30_000
    assert listed[code_of(japan)] == japan.cost.amount_e4 - 1_000

    response = await api.get(PACKAGES, params={"search": "antarctica"})
    assert response.status_code == 200, response.text
    assert [p["package_code"] for p in response.json()["data"]["packages"]] == [code_of(own)]

    # The upstream stops listing its own product: the offer goes, and with it the package.
    fake.packages = [cheap_japan]
    report = (await sync(runtime))["fake-delist"]
    assert (report.delisted, report.unchanged, report.added) == (1, 1, 0)
    offers = await offers_of(runtime, account_id)
    assert {code: o.active for code, o in offers.items()} == {"FAKE-AQ-2": False, "FAKE-JP-1": True}
    assert (await package_by_code(runtime, code_of(own))).active is False
    listed = await listing(runtime)
    assert code_of(own) not in listed
    response = await api.get(PACKAGES, params={"search": "antarctica"})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["packages"] == []
    assert response.json()["data"]["pagination"]["total"] == 0

    # It stops listing the shared product too: the simulator's offer keeps the package on sale.
    fake.packages = []
    report = (await sync(runtime))["fake-delist"]
    assert (report.delisted, report.unchanged) == (1, 0)
    assert (await package_by_code(runtime, code_of(japan))).active is True
    assert (await listing(runtime))[code_of(japan)] == japan.cost.amount_e4

    # Listed again: the same offer row comes back to life, the package returns.
    fake.packages = [own]
    report = (await sync(runtime))["fake-delist"]
    assert (report.added, report.updated, report.delisted) == (0, 1, 0)
    assert (await offers_of(runtime, account_id))["FAKE-AQ-2"].active is True
    assert (await listing(runtime))[code_of(own)] == 30_000


@pytest.mark.usefixtures("restore_catalogue")
async def test_disabled_provider_leaves_the_listing_at_the_next_sync(runtime: Runtime) -> None:
    _, upstream = await default_simulator(runtime)
    japan = by_name(upstream, "Japan 10GB 30 Days")
    cheap_japan = dataclasses.replace(japan, provider_code="FAKE-JP-10", cost=Money(1, "USD"))
    own = unique_package("FAKE-AQ-2", 25_000, days=11)
    fake = FakeProvider([cheap_japan, own])
    account_id = await add_provider(runtime, "fake-disabled", adapter=fake)
    await sync(runtime)
    listed = await listing(runtime)
    assert (listed[code_of(own)], listed[code_of(japan)]) == (25_000, 1)

    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(ProviderAccount).where(ProviderAccount.id == account_id).values(enabled=False)
        )
    reports = await sync(runtime)
    assert "fake-disabled" not in reports  # a disabled provider is not asked
    assert (await package_by_code(runtime, code_of(own))).active is False
    listed = await listing(runtime)
    assert code_of(own) not in listed
    assert listed[code_of(japan)] == japan.cost.amount_e4  # back to the simulator's cost

    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(ProviderAccount).where(ProviderAccount.id == account_id).values(enabled=True)
        )
    await sync(runtime)
    listed = await listing(runtime)
    assert (listed[code_of(own)], listed[code_of(japan)]) == (25_000, 1)


async def test_topups_are_synced_but_listed_apart(runtime: Runtime) -> None:
    _, upstream = await default_simulator(runtime)
    topups = {code_of(p): p.cost.amount_e4 for p in upstream if p.is_topup}
    assert topups
    assert await listing(runtime, topups=True) == topups
    assert not set(topups) & set(await listing(runtime))
