"""esimgate reselling from another esimgate: a second instance, with its own database and served
over real HTTP on loopback, is configured as an ``esimfly``-kind upstream (it speaks the same
Business API). Packages, an order, its status, usage, a top-up and a cancellation go through the
downstream Business API, and the upstream instance's own database shows what it was asked to do.

The upstream runs on the real clock (it checks ``RT-Timestamp`` against it); the downstream's
frozen clock is "now" and is never advanced here, so its signatures stay fresh.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import delete, select, update
from sqlalchemy.engine import make_url

from esimgate.accounts.models import Account
from esimgate.accounts.pricing import price_minor
from esimgate.accounts.service import NewAccount, create_account
from esimgate.app import create_app, prepare
from esimgate.auth.keys import issue_key
from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.clock import SystemClock
from esimgate.esims.models import Esim
from esimgate.orders.models import Order
from esimgate.providers.esimfly.adapter import EsimflyProvider
from esimgate.providers.models import ProviderAccount
from esimgate.providers.service import SIMULATOR, sync_catalogue
from esimgate.runtime import Runtime, build_runtime
from esimgate.wallet.service import credit
from tests.conftest import TEST_DATABASE_URL, MakeAccount, _settings, _truncate
from tests.support import SignedClient

BUSINESS = "/api/v1/business"
PACKAGES = f"{BUSINESS}/esims/packages"
ORDER = f"{BUSINESS}/esims/order"
STATUS = f"{BUSINESS}/esims/status"
USAGE = f"{BUSINESS}/esims/usage/query"
TOPUPS = f"{BUSINESS}/topup/packages"
TOPUP = f"{BUSINESS}/topup/order"
CANCEL = f"{BUSINESS}/esims/cancel"
UPSTREAM_ACCOUNT = "upstream-esimgate"
UPSTREAM_BALANCE_MINOR = 100_000  # 1000.00 USD at the upstream
MARKUP_BP = 1_500  # the downstream reseller pays upstream cost + 15 %


@dataclass
class Upstream:
    runtime: Runtime
    base_url: str
    account_id: int
    access_code: str
    secret_key: str

    async def balance_minor(self) -> int:
        async with self.runtime.sessions() as session:
            account = await session.get(Account, self.account_id)
            assert account is not None
            return account.balance_minor


async def _postgres_admin(statements: list[str]) -> None:
    """Run statements on the server's ``postgres`` database (never the suite's own)."""
    import asyncpg  # type: ignore[import-untyped]

    assert TEST_DATABASE_URL is not None
    url = make_url(TEST_DATABASE_URL)
    connection = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database="postgres",
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _upstream_database_name(suite_url: str) -> str:
    """The upstream's own database, next to the suite's: ``<suite database>_upstream`` (runs
    against different suite databases never share it; never the suite's database itself)."""
    suite = make_url(suite_url).database or "esimgate"
    name = f"{suite}_upstream"[:63]
    assert name != suite and name.replace("_", "").isalnum(), name
    return name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[Upstream]:
    """A second esimgate with its own database, a funded reseller account and an API key,
    served with uvicorn on 127.0.0.1."""
    if TEST_DATABASE_URL:
        upstream_db = _upstream_database_name(TEST_DATABASE_URL)
        drop = f'DROP DATABASE IF EXISTS "{upstream_db}" WITH (FORCE)'
        await _postgres_admin([drop, f'CREATE DATABASE "{upstream_db}"'])
        url = make_url(TEST_DATABASE_URL).set(database=upstream_db)
        database_url = url.render_as_string(hide_password=False)
        assert make_url(database_url).database != make_url(TEST_DATABASE_URL).database
    else:
        database_file = tmp_path / "upstream.db"
        database_url = f"sqlite+aiosqlite:///{database_file}"
    runtime = build_runtime(
        _settings(database_url, tmp_path, redis_url=None, embedded_worker=False), SystemClock()
    )
    server: uvicorn.Server | None = None
    task: asyncio.Task[None] | None = None
    try:
        await prepare(runtime)
        async with runtime.sessions() as session, session.begin():
            account = await create_account(
                session, runtime.clock, NewAccount("downstream-reseller", "USD")
            )
            await credit(session, runtime.clock, account.id, UPSTREAM_BALANCE_MINOR, "e2e")
            issued = await issue_key(session, runtime.clock, runtime.box, account.id)
        app = create_app(runtime=runtime, migrate=False, embedded_worker=False)
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
        )
        task = asyncio.create_task(server.serve())
        for _ in range(250):
            if server.started or task.done():
                break
            await asyncio.sleep(0.02)
        assert server.started, "the upstream esimgate did not start"
        yield Upstream(
            runtime,
            f"http://127.0.0.1:{port}{BUSINESS}",
            account.id,
            issued.key.access_code,
            issued.secret_key,
        )
    finally:
        if server is not None and task is not None:
            server.should_exit = True
            await asyncio.wait_for(task, timeout=10)
        await runtime.aclose()
        if TEST_DATABASE_URL:
            await _postgres_admin([drop])
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                leftover = Path(f"{database_file}{suffix}")
                await asyncio.to_thread(leftover.unlink, missing_ok=True)


async def _sync(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        await sync_catalogue(session, runtime.clock, runtime.providers)


@pytest.fixture
async def via_upstream(runtime: Runtime, upstream: Upstream) -> AsyncIterator[int]:
    """The downstream (the suite's runtime) with the upstream esimgate as its only enabled
    provider account, of kind ``esimfly``; afterwards the session catalogue is as before."""
    before = await _catalogue(runtime)
    packages_before = set(before[0])
    credentials = {"access_code": upstream.access_code, "secret_key": upstream.secret_key}
    async with runtime.sessions() as session, session.begin():
        provider = ProviderAccount(
            name=UPSTREAM_ACCOUNT,
            kind="esimfly",
            base_url=upstream.base_url,
            credentials_encrypted=runtime.box.encrypt(json.dumps(credentials)),
            enabled=True,
            created_at=runtime.clock.now(),
        )
        session.add(provider)
        await session.flush()
        provider_id = provider.id
        await session.execute(
            update(ProviderAccount).where(ProviderAccount.name == SIMULATOR).values(enabled=False)
        )
    try:
        await _sync(runtime)
        yield provider_id
    finally:
        await _truncate(runtime)  # orders and eSIMs reference the extra account: clear them first
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                delete(PackageOffer).where(PackageOffer.provider_account_id == provider_id)
            )
            await session.execute(delete(ProviderAccount).where(ProviderAccount.id == provider_id))
            await session.execute(
                update(ProviderAccount)
                .where(ProviderAccount.name == SIMULATOR)
                .values(enabled=True)
            )
            added = set(await session.scalars(select(CatalogPackage.id))) - packages_before
            if added:
                await session.execute(
                    delete(PackageOffer).where(PackageOffer.package_id.in_(added))
                )
                await session.execute(delete(CatalogPackage).where(CatalogPackage.id.in_(added)))
        await _sync(runtime)
        assert await _catalogue(runtime) == before, "the session catalogue was not restored"


async def _catalogue(runtime: Runtime) -> tuple[dict[int, tuple[Any, ...]], ...]:
    """Provider accounts, packages and offers, without sync timestamps."""
    async with runtime.sessions() as session:
        accounts = {
            a.id: (a.name, a.kind, a.enabled)
            for a in await session.scalars(select(ProviderAccount))
        }
        packages = {
            p.id: (p.code, p.active, p.is_topup)
            for p in await session.scalars(select(CatalogPackage))
        }
        offers = {
            o.id: (o.package_id, o.provider_account_id, o.provider_code, o.cost_e4, o.active)
            for o in await session.scalars(select(PackageOffer))
        }
    return packages, accounts, offers


async def _base_package(runtime: Runtime, provider_id: int, country: str) -> tuple[str, str, int]:
    """(catalogue code, upstream code, cost) of a local base package the upstream sells."""
    async with runtime.sessions() as session:
        row = (
            await session.execute(
                select(CatalogPackage.code, PackageOffer.provider_code, PackageOffer.cost_e4)
                .join(PackageOffer, PackageOffer.package_id == CatalogPackage.id)
                .where(
                    PackageOffer.provider_account_id == provider_id,
                    PackageOffer.active.is_(True),
                    CatalogPackage.region == country,
                    CatalogPackage.kind == "local",
                    CatalogPackage.is_topup.is_(False),
                    CatalogPackage.data_bytes.is_not(None),
                )
                .order_by(CatalogPackage.code)
                .limit(1)
            )
        ).first()
    assert row is not None, f"the upstream esimgate sells no {country} package"
    return row[0], row[1], row[2]


async def _balance(api: SignedClient) -> float:
    response = await api.get(f"{BUSINESS}/balance")
    assert response.status_code == 200, response.text
    value: float = response.json()["data"]["balance"]
    return value


async def test_esimgate_resells_from_another_esimgate(
    runtime: Runtime,
    upstream: Upstream,
    via_upstream: int,
    make_account: MakeAccount,
    api: SignedClient,
) -> None:
    provider_id = via_upstream
    async with runtime.sessions() as session:
        provider = await session.get(ProviderAccount, provider_id)
        assert provider is not None
    adapter = runtime.providers.adapter(provider)
    assert isinstance(adapter, EsimflyProvider)

    # A downstream reseller with a markup; prices are the upstream's price to us plus it.
    creds = await make_account("downstream-shop", balance_minor=50_000, markup_percent_bp=MARKUP_BP)
    shop = SignedClient(api.client, creds, api.clock_ms)

    # --- catalogue: the upstream esimgate's packages, at the downstream account's prices ----
    code, upstream_code, cost_e4 = await _base_package(runtime, provider_id, "Turkey")
    async with upstream.runtime.sessions() as session:
        upstream_offer = (
            (
                await session.execute(
                    select(PackageOffer.cost_e4)
                    .join(CatalogPackage, CatalogPackage.id == PackageOffer.package_id)
                    .where(CatalogPackage.code == upstream_code)
                )
            )
            .scalars()
            .all()
        )
    assert upstream_offer, "the downstream's offer code is an upstream catalogue code"
    # The upstream reseller account has no markup: we pay its cost rounded to the cent.
    assert cost_e4 == price_minor(min(upstream_offer), "USD", 0, 0) * 100
    listed = await shop.get(PACKAGES, params={"search": "Turkey", "limit": 100})
    assert listed.status_code == 200, listed.text
    by_code = {p["package_code"]: p for p in listed.json()["data"]["packages"]}
    assert code in by_code, sorted(by_code)
    expected_price = price_minor(cost_e4, "USD", MARKUP_BP, 0)
    assert round(by_code[code]["cost"] * 100) == expected_price
    async with runtime.sessions() as session:
        sellers = set(
            await session.scalars(
                select(PackageOffer.provider_account_id)
                .join(ProviderAccount, ProviderAccount.id == PackageOffer.provider_account_id)
                .where(ProviderAccount.enabled.is_(True), PackageOffer.active.is_(True))
            )
        )
    assert sellers == {provider_id}, "only the upstream esimgate is on sale during the test"

    # --- an order (Turkey: provisioned synchronously) --------------------------------------
    upstream_start = await upstream.balance_minor()
    shop_start = await _balance(shop)
    placed = await shop.post(ORDER, {"packageCode": code})
    assert placed.status_code == 200, placed.text
    order = placed.json()
    assert order["status"] == "completed", order
    assert order["amount"] == pytest.approx(expected_price / 100)
    assert await _balance(shop) == pytest.approx(shop_start - expected_price / 100)
    iccid = order["esims"][0]["iccid"]
    looked_up = await shop.get(ORDER, params={"orderReference": order["orderReference"]})
    assert looked_up.status_code == 200, looked_up.text
    assert looked_up.json()["order"]["status"] == "completed"
    assert [e["iccid"] for e in looked_up.json()["order"]["esims"]] == [iccid]

    # The upstream esimgate issued that ICCID, to our reseller account, and charged it.
    async with runtime.sessions() as session:
        ours = (await session.execute(select(Order))).scalar_one()
    async with upstream.runtime.sessions() as session:
        theirs = (
            await session.execute(select(Order).where(Order.account_id == upstream.account_id))
        ).scalar_one()
        upstream_esim = (
            await session.execute(select(Esim).where(Esim.iccid == iccid))
        ).scalar_one()
    assert ours.provider_account_id == provider_id
    assert ours.provider_order_id == theirs.reference
    assert theirs.package_code == upstream_code and theirs.status == "completed"
    assert upstream_esim.account_id == upstream.account_id
    assert upstream_esim.order_id == theirs.id
    assert ours.unit_cost_e4 == theirs.unit_price_minor * 100
    assert await upstream.balance_minor() == upstream_start - theirs.amount_minor

    # --- live status and usage ---------------------------------------------------------------
    status = await shop.post(STATUS, {"iccid": iccid})
    assert status.status_code == 200, status.text
    live = status.json()["data"]
    assert live["iccid"] == iccid and live["status"] == "NEW", live
    assert upstream_esim.total_bytes is not None
    assert live["data_usage"]["total_gb"] == pytest.approx(
        upstream_esim.total_bytes / 1024**3, abs=1e-3
    )
    usage = await shop.get(USAGE, params={"iccid": iccid})
    assert usage.status_code == 200, usage.text
    usage_data = usage.json()["data"]
    assert usage_data["esim"]["iccid"] == iccid
    assert usage_data["esim"]["order_id"] == order["orderReference"]

    # --- top-up: esimfly lists top-ups per eSIM, so they appear after the next sync --------
    assert "TOPUP" in {c.name for c in adapter.capabilities}
    await _sync(runtime)
    offered = await shop.get(TOPUPS, params={"iccid": iccid})
    assert offered.status_code == 200, offered.text
    topups = offered.json()["data"]["packages"]
    assert topups, "the upstream esimgate offers top-ups for a Turkish eSIM"
    choice = topups[0]
    upstream_before_topup = await upstream.balance_minor()
    topped = await shop.post(
        TOPUP, {"iccid": iccid, "packageCode": choice["package_code"], "price": choice["cost"]}
    )
    assert topped.status_code == 200, topped.text
    topup_body = topped.json()
    assert topup_body["status"] == "completed", topup_body
    assert topup_body["amount"] == pytest.approx(choice["cost"])
    async with upstream.runtime.sessions() as session:
        upstream_topup = (
            await session.execute(
                select(Order).where(Order.account_id == upstream.account_id, Order.kind == "topup")
            )
        ).scalar_one()
        grown = (await session.execute(select(Esim).where(Esim.iccid == iccid))).scalar_one()
    assert upstream_topup.status == "completed" and upstream_topup.esim_id == upstream_esim.id
    assert grown.total_bytes is not None and upstream_esim.total_bytes is not None
    assert grown.total_bytes > upstream_esim.total_bytes
    assert await upstream.balance_minor() == upstream_before_topup - upstream_topup.amount_minor
    async with runtime.sessions() as session:
        mine = (await session.execute(select(Esim).where(Esim.iccid == iccid))).scalar_one()
    assert mine.total_bytes == grown.total_bytes

    # --- cancel a second order: refunded downstream and upstream ------------------------------
    upstream_before_second = await upstream.balance_minor()
    shop_before_second = await _balance(shop)
    second = (await shop.post(ORDER, {"packageCode": code})).json()
    assert second["status"] == "completed", second
    second_iccid = second["esims"][0]["iccid"]
    assert await upstream.balance_minor() < upstream_before_second
    cancelled = await shop.post(CANCEL, {"iccid": second_iccid})
    assert cancelled.status_code == 200, cancelled.text
    result = cancelled.json()["data"]
    assert result["cancelled_esims"] == 1
    assert result["refunded_amount"] == pytest.approx(second["amount"])
    assert await _balance(shop) == pytest.approx(shop_before_second)
    assert await upstream.balance_minor() == upstream_before_second
    async with upstream.runtime.sessions() as session:
        upstream_second = (
            await session.execute(select(Esim).where(Esim.iccid == second_iccid))
        ).scalar_one()
    assert upstream_second.status == "CANCELLED"
    again = await shop.post(CANCEL, {"iccid": second_iccid})
    assert again.status_code == 400 and again.json()["code"] == "ALREADY_CANCELLED"
    assert await upstream.balance_minor() == upstream_before_second
    status_after = await shop.get(ORDER, params={"orderReference": second["orderReference"]})
    assert status_after.json()["order"]["status"] == "cancelled"

    # The first eSIM (topped up, never used) is untouched by the second order's cancellation.
    async with upstream.runtime.sessions() as session:
        first_now = (await session.execute(select(Esim).where(Esim.iccid == iccid))).scalar_one()
    assert first_now.status != "CANCELLED"
