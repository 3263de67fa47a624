"""End to end over real loopback HTTP: esimgate configured to use each fake upstream in turn.

For every upstream kind the fake (tests/fakes/<kind>.py) is served by uvicorn on 127.0.0.1, a
provider account of that kind points at it, the default simulator is disabled for the test, the
catalogue is synced, and the full Business API flow runs: order → status → usage → top-up →
cancel (the steps the adapter's capabilities allow). Everything the test adds is removed again
and the simulator's catalogue restored, so the session catalogue is as before.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from sqlalchemy import delete, func, select, update

from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.clock import FrozenClock
from esimgate.esims.schemas import megabytes
from esimgate.providers.base import Capability
from esimgate.providers.inbound import ProviderWebhook
from esimgate.providers.models import ProviderAccount
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.providers.service import SIMULATOR, sync_catalogue
from esimgate.runtime import Runtime
from esimgate.wallet.audit import ledger_violations
from esimgate.worker.engine import Worker
from tests.conftest import _truncate
from tests.fakes import airalo, esimaccess, esimfly, esimgo, simplifytrip
from tests.support import SignedClient

BUSINESS = "/api/v1/business"
PACKAGES = f"{BUSINESS}/esims/packages"
ORDER = f"{BUSINESS}/esims/order"
STATUS = f"{BUSINESS}/esims/status"
USAGE = f"{BUSINESS}/esims/usage/query"
TOPUPS = f"{BUSINESS}/topup/packages"
TOPUP = f"{BUSINESS}/topup/order"
CANCEL = f"{BUSINESS}/esims/cancel"
BALANCE = f"{BUSINESS}/balance"
MIB = 1024**2


# --- the five upstreams -------------------------------------------------------------------------


@dataclass
class Upstream:
    """How to run one fake upstream and drive it from the test."""

    kind: str
    app: Any
    state: Any
    prefix: str  # the adapter's base path on the fake
    credentials: dict[str, str]
    # Finish every pending (asynchronous) order upstream; returns the notifications the upstream
    # then POSTs to esimgate (headers, raw body), if it sends any.
    complete: Callable[[Any], list[tuple[dict[str, str], bytes]] | None]
    set_usage: Callable[[Any, str], int]  # make the fake report usage; returns the used bytes
    region: str | None = None  # the region to buy in (one the fake sells top-ups for)
    asynchronous: bool = False  # orders answer pending_details until the fake completes them
    name: str = ""  # the provider account's name suffix (the kind unless one kind runs twice)

    @property
    def account(self) -> str:
        return f"e2e-{self.name or self.kind}"


def _esimaccess() -> Upstream:
    app, state = esimaccess.make_app()

    def complete(s: esimaccess.FakeState) -> None:
        for order in s.orders.values():
            s.allocate(order.order_no)

    def set_usage(s: esimaccess.FakeState, iccid: str) -> int:
        esim = next(e for e in s.esims.values() if e.iccid == iccid)
        used = 123 * MIB + 456  # bytes, reported as bytes
        s.set_usage(esim.esim_tran_no, used)
        return used

    return Upstream(
        "esimaccess",
        app,
        state,
        "/api/v1/open",
        {"access_code": state.access_code, "secret_key": state.secret_key or ""},
        complete,
        set_usage,
        asynchronous=True,
    )


def _airalo() -> Upstream:
    app, state = airalo.make_app()

    def set_usage(s: airalo.FakeAiraloState, iccid: str) -> int:
        sim = s.sims[iccid]
        total = int(sim.total_mb) or 1024
        s.set_usage(iccid, remaining_mb=total - 300, total_mb=total, status="ACTIVE")
        return 300 * MIB  # MB (binary) used = total − remaining

    return Upstream(
        "airalo",
        app,
        state,
        "/v2",
        {"client_id": airalo.CLIENT_ID, "client_secret": airalo.CLIENT_SECRET},
        lambda s: None,
        set_usage,
    )


def _airalo_async() -> Upstream:
    """Airalo with asynchronous orders: the result arrives as a signed POST to esimgate."""
    fake = _airalo()

    def complete(s: airalo.FakeAiraloState) -> list[tuple[dict[str, str], bytes]]:
        return [(d.headers, d.body) for d in s.complete_async()]

    fake.credentials |= {
        "async_orders": "true",
        "webhook_url": "http://esimgate.test/api/v1/providers/e2e-airalo-async/webhooks",
    }
    fake.complete = complete
    fake.asynchronous = True
    fake.name = "airalo-async"
    return fake


def _simplifytrip() -> Upstream:
    app, state = simplifytrip.make_app()

    def complete(s: simplifytrip.FakeState) -> None:
        for track_id, order in list(s.orders.items()):
            if order.status != "SUCCESS":
                s.fulfil(track_id)

    def set_usage(s: simplifytrip.FakeState, iccid: str) -> int:
        used = 200 * MIB + 1
        s.set_usage(iccid, used=used, plan_status="ACTIVE")
        return used

    return Upstream(
        "simplifytrip",
        app,
        state,
        "/api/v1",
        {
            "apiKey": simplifytrip.API_KEY,
            "secretKey": simplifytrip.SECRET_KEY,
            "checksumKey": simplifytrip.CHECKSUM_KEY,
        },
        complete,
        set_usage,
        asynchronous=True,
    )


def _esimgo() -> Upstream:
    app, state = esimgo.make_app()

    def set_usage(s: esimgo.FakeState, iccid: str) -> int:
        used = 300_000_000  # eSIM Go counts in decimal units: 300 MB = 300 000 000 bytes
        # The fake's default start/end times are fixed dates (January 2026); use current ones so
        # the bundle is not already over when esimgate reads it.
        now = datetime.now(UTC)
        assignment = s.assignment(iccid)
        assignment["startTime"] = now.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
        assignment["endTime"] = (now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
        s.use(iccid, used)
        return used

    return Upstream(
        "esimgo",
        app,
        state,
        "/v2.5",
        {"api_key": esimgo.API_KEY, "order_spacing_seconds": "0"},
        lambda s: None,
        set_usage,
    )


def _esimfly() -> Upstream:
    app, state = esimfly.make_app()

    def set_usage(s: esimfly.FakeState, iccid: str) -> int:
        s.set_usage(iccid, used_mb="250")
        return 250 * MIB

    return Upstream(
        "esimfly",
        app,
        state,
        esimfly.BASE,
        {"access_code": esimfly.ACCESS_CODE, "secret_key": esimfly.SECRET_KEY},
        lambda s: None,
        set_usage,
        region="United States",  # the fake's only top-up is for its US package
    )


UPSTREAMS: dict[str, Callable[[], Upstream]] = {
    "esimaccess": _esimaccess,
    "airalo": _airalo,
    "airalo-async": _airalo_async,
    "simplifytrip": _simplifytrip,
    "esimgo": _esimgo,
    "esimfly": _esimfly,
}


# --- serving a fake over loopback and wiring it in ----------------------------------------------


async def serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "the fake upstream did not start"
    return server, task, port


async def stop(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


async def set_simulator_enabled(runtime: Runtime, enabled: bool) -> None:
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(ProviderAccount).where(ProviderAccount.name == SIMULATOR).values(enabled=enabled)
        )


async def catalogue_snapshot(runtime: Runtime) -> set[tuple[Any, ...]]:
    """What is on sale from whom at what cost: must be the same before and after each test."""
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(
                CatalogPackage.code,
                CatalogPackage.active,
                ProviderAccount.name,
                ProviderAccount.enabled,
                PackageOffer.cost_e4,
                PackageOffer.active,
            )
            .join(PackageOffer, PackageOffer.package_id == CatalogPackage.id)
            .join(ProviderAccount, ProviderAccount.id == PackageOffer.provider_account_id)
        )
        return {tuple(row) for row in rows}


async def sync(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        await sync_catalogue(session, runtime.clock, runtime.providers)


@pytest.fixture(params=list(UPSTREAMS))
async def upstream(request: pytest.FixtureRequest, runtime: Runtime) -> AsyncIterator[Upstream]:
    """The fake served on loopback, its provider account synced, the simulator disabled."""
    fake = UPSTREAMS[request.param]()
    server, task, port = await serve(fake.app)
    async with runtime.sessions() as session:
        last_package = await session.scalar(select(func.max(CatalogPackage.id))) or 0
    before = await catalogue_snapshot(runtime)
    account_id: int | None = None
    try:
        async with runtime.sessions() as session, session.begin():
            account = await ProviderAccountRepository(session).add(
                ProviderAccount(
                    name=fake.account,
                    kind=fake.kind,
                    base_url=f"http://127.0.0.1:{port}{fake.prefix}",
                    credentials_encrypted=runtime.box.encrypt(json.dumps(fake.credentials)),
                    enabled=True,
                    created_at=runtime.clock.now(),
                )
            )
            account_id = account.id
        await set_simulator_enabled(runtime, False)
        await sync(runtime)
        yield fake
    finally:
        try:
            await _truncate(runtime)  # orders reference the extra account: clear them first
            async with runtime.sessions() as session, session.begin():
                if account_id is not None:
                    await session.execute(
                        delete(PackageOffer).where(PackageOffer.provider_account_id == account_id)
                    )
                    await session.execute(
                        delete(ProviderAccount).where(ProviderAccount.id == account_id)
                    )
                offered = select(PackageOffer.package_id)
                await session.execute(
                    delete(CatalogPackage).where(
                        CatalogPackage.id > last_package, CatalogPackage.id.not_in(offered)
                    )
                )
            await set_simulator_enabled(runtime, True)
            await sync(runtime)
            assert await catalogue_snapshot(runtime) == before, "session catalogue not restored"
        finally:
            await stop(server, task)


# --- Business API steps -------------------------------------------------------------------------


async def balance(api: SignedClient) -> float:
    response = await api.get(BALANCE)
    assert response.status_code == 200, response.text
    value: float = response.json()["data"]["balance"]
    return value


async def order_status(api: SignedClient, reference: str) -> dict[str, Any]:
    response = await api.get(f"{ORDER}?orderReference={reference}")
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()["order"]
    return order


async def place(
    api: SignedClient, runtime: Runtime, clock: FrozenClock, fake: Upstream, code: str
) -> dict[str, Any]:
    """Order one eSIM; an asynchronous upstream is told to finish and the worker settles it."""
    response = await api.post(ORDER, {"packageCode": code})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == ("pending_details" if fake.asynchronous else "completed"), body
    reference = body["orderReference"]
    if body["status"] == "pending_details":
        for headers, raw in fake.complete(fake.state) or []:
            path = f"/api/v1/providers/{fake.account}/webhooks"
            delivered = await api.client.post(path, content=raw, headers=headers)
            assert delivered.status_code == 200, delivered.text
        for _ in range(3):
            clock.advance(seconds=11)  # past the orders.settle poll delay (10 s)
            await Worker(runtime).run_due()
            if (await order_status(api, reference))["status"] == "completed":
                break
    order = await order_status(api, reference)
    assert order["status"] == "completed", order
    order["_placed"] = body
    return order


async def adapter_for(runtime: Runtime, fake: Upstream) -> Any:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name(fake.account)
    assert account is not None
    return runtime.providers.adapter(account)


def iccids_of(order: dict[str, Any]) -> list[str]:
    return [e["iccid"] for e in order.get("esims") or []]


# --- the test -----------------------------------------------------------------------------------


async def test_business_flow_over_http(
    upstream: Upstream, api: SignedClient, runtime: Runtime, clock: FrozenClock
) -> None:
    fake = upstream
    capabilities = (await adapter_for(runtime, fake)).capabilities
    assert (Capability.ASYNC_PROVISIONING in capabilities) or not fake.asynchronous

    # The catalogue offers this upstream's packages only.
    listed = await api.get(f"{PACKAGES}?limit=100")
    assert listed.status_code == 200, listed.text
    packages = listed.json()["data"]["packages"]
    assert packages, f"{fake.kind}: no packages after sync"
    async with runtime.sessions() as session:
        offered_by = set(
            await session.scalars(
                select(ProviderAccount.name)
                .join(PackageOffer, PackageOffer.provider_account_id == ProviderAccount.id)
                .join(CatalogPackage, CatalogPackage.id == PackageOffer.package_id)
                .where(
                    CatalogPackage.code.in_([p["package_code"] for p in packages]),
                    ProviderAccount.enabled.is_(True),
                    PackageOffer.active.is_(True),
                )
            )
        )
    assert offered_by == {fake.account}
    candidates = [p for p in packages if not p.get("is_unlimited") and p.get("data_amount_gb")]
    candidates = candidates or packages
    if fake.region is not None:
        candidates = [p for p in candidates if p["region"] == fake.region]
    elif Capability.TOPUP in capabilities:
        rechargeable = [p for p in candidates if p.get("features", {}).get("is_rechargeable")]
        candidates = rechargeable or candidates
    assert candidates, packages

    # Order → completed (after the upstream finishes, for asynchronous ones).
    start = await balance(api)
    first = await place(api, runtime, clock, fake, candidates[0]["package_code"])
    iccids = iccids_of(first)
    assert len(iccids) == 1, first
    iccid = iccids[0]
    issued = _issued_iccids(fake)
    assert iccid in issued, (iccid, issued)
    after_order = await balance(api)
    assert after_order == pytest.approx(start - first["_placed"]["amount"])

    # Live status, with the usage the fake now reports; then the stored usage.
    used_bytes = fake.set_usage(fake.state, iccid)
    live = await api.post(STATUS, {"iccid": iccid})
    assert live.status_code == 200, live.text
    assert live.json()["success"] is True
    assert live.json()["data"].get("status"), live.json()
    usage = await api.get(f"{USAGE}?iccid={iccid}")
    assert usage.status_code == 200, usage.text
    data = usage.json()["data"]
    assert data["esim"]["iccid"] == iccid
    assert data["esim"]["order_id"] == first["_placed"]["orderReference"]
    assert data["data"]["used_mb"] == megabytes(used_bytes), (data, used_bytes)

    # Top-up, when the upstream sells them: charged at the listed price. The periodic catalogue
    # refresh runs first (esimfly lists top-ups per ICCID, so they appear once an eSIM exists).
    if Capability.TOPUP in capabilities:
        await sync(runtime)
        offered = await api.get(f"{TOPUPS}?iccid={iccid}")
        assert offered.status_code == 200, offered.text
        topups = offered.json()["data"]["packages"]
        assert topups, f"{fake.kind}: no top-ups for {iccid}"
        choice = topups[0]
        before = await balance(api)
        response = await api.post(
            TOPUP, {"iccid": iccid, "packageCode": choice["package_code"], "price": choice["cost"]}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "completed", body
        assert body["amount"] == choice["cost"]
        assert await balance(api) == pytest.approx(before - choice["cost"])

    # Cancel, when the upstream can: a fresh second order, refunded in full.
    if Capability.CANCEL in capabilities:
        before = await balance(api)
        second = await place(api, runtime, clock, fake, candidates[0]["package_code"])
        esim_id = second["esims"][0]["id"]
        assert await balance(api) == pytest.approx(before - second["_placed"]["amount"])
        response = await api.post(CANCEL, {"esimId": esim_id})
        assert response.status_code == 200, response.text
        cancelled = response.json()["data"]
        assert cancelled["cancelled_esims"] == 1, cancelled
        assert cancelled["refunded_amount"] == pytest.approx(second["_placed"]["amount"])
        assert await balance(api) == pytest.approx(before)
        reference = second["_placed"]["orderReference"]
        assert (await order_status(api, reference))["status"] == "cancelled"

    async with runtime.sessions() as session:
        problems = await ledger_violations(session)
        # Every notification the upstream sent was verified, kept and acted on.
        hooks = (await session.execute(select(ProviderWebhook))).scalars().all()
    assert not problems, problems
    for hook in hooks:
        assert hook.processed_at is not None and hook.outcome, hook
        assert hook.outcome.startswith("order "), hook.outcome
    assert hooks or fake.name != "airalo-async", "Airalo's async results arrive as webhooks"


def _issued_iccids(fake: Upstream) -> set[str]:
    state = fake.state
    esims = getattr(state, "esims", None) or getattr(state, "sims", None) or {}
    return {getattr(e, "iccid", key) for key, e in esims.items()}
