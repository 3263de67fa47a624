"""Top-ups and cancellation through HTTP, charged and refunded through the ledger."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from esimgate.esims.models import Esim
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.providers.simulator.adapter import SimulatorProvider
from esimgate.runtime import Runtime
from esimgate.wallet.models import LedgerEntry
from tests.orders.test_place_order import ORDER, package
from tests.support import SignedClient

TOPUPS = "/api/v1/business/topup/packages"
TOPUP = "/api/v1/business/topup/order"
CANCEL = "/api/v1/business/esims/cancel"
GIB = 1024**3


async def buy(api: SignedClient, runtime: Runtime, country: str, quantity: int = 1) -> Any:
    pkg = await package(runtime, country)
    response = await api.post(ORDER, {"packageCode": pkg["code"], "quantity": quantity})
    assert response.status_code == 200, response.text
    return response.json()


async def balance(api: SignedClient) -> float:
    value: float = (await api.get("/api/v1/business/balance")).json()["data"]["balance"]
    return value


async def simulator(runtime: Runtime) -> SimulatorProvider:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name("simulator")
    assert account is not None
    adapter = runtime.providers.adapter(account)
    assert isinstance(adapter, SimulatorProvider)
    return adapter


async def test_topup_packages_are_compatible_only(api: SignedClient, runtime: Runtime) -> None:
    order = await buy(api, runtime, "Turkey")
    iccid = order["esims"][0]["iccid"]
    response = await api.get(f"{TOPUPS}?iccid={iccid}")
    assert response.status_code == 200, response.text
    packages = response.json()["data"]["packages"]
    assert packages, "a rechargeable Turkish eSIM has top-ups"
    for item in packages:
        assert item["package_code"].startswith("TOPUP_")
        assert item["country_codes"] == ["TR"]
        assert item["features"]["is_rechargeable"] is True
    unknown = await api.get(f"{TOPUPS}?iccid=8900000000000000000")
    assert unknown.status_code == 404 and unknown.json()["code"] == "ESIM_NOT_FOUND"


async def test_topup_charges_and_extends(api: SignedClient, runtime: Runtime) -> None:
    order = await buy(api, runtime, "Turkey")
    iccid = order["esims"][0]["iccid"]
    packages = (await api.get(f"{TOPUPS}?iccid={iccid}")).json()["data"]["packages"]
    choice = packages[0]
    before = await balance(api)
    async with runtime.sessions() as session:
        esim = (await session.execute(select(Esim).where(Esim.iccid == iccid))).scalar_one()
        total_before = esim.total_bytes
    assert total_before is not None
    response = await api.post(
        TOPUP, {"iccid": iccid, "packageCode": choice["package_code"], "price": choice["cost"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["amount"] == choice["cost"]
    assert body["newBalance"] == pytest.approx(before - choice["cost"])
    expected_total = total_before + choice["data_amount_gb"] * GIB
    assert body["esimData"]["newTotalVolumeGB"] == pytest.approx(expected_total / GIB, abs=1e-3)
    history = (await api.get("/api/v1/business/orders?sort_order=asc")).json()["data"]
    assert [o["type"] for o in history["orders"]] == ["esim", "topup"]


async def test_topup_rules(api: SignedClient, runtime: Runtime, make_account: Any) -> None:
    order = await buy(api, runtime, "Turkey")
    iccid = order["esims"][0]["iccid"]
    wrong = await api.post(TOPUP, {"iccid": iccid, "packageCode": "TOPUP_NOSUCHONE"})
    assert wrong.json()["code"] == "INVALID_TOPUP_PACKAGE", wrong.text
    missing = await api.post(TOPUP, {"iccid": iccid})
    assert missing.json()["code"] == "MISSING_FIELDS", missing.text
    stranger = SignedClient(
        api.client, await make_account("other", balance_minor=10_000), api.clock_ms
    )
    packages = (await api.get(f"{TOPUPS}?iccid={iccid}")).json()["data"]["packages"]
    foreign = await stranger.post(
        TOPUP, {"iccid": iccid, "packageCode": packages[0]["package_code"]}
    )
    assert foreign.status_code == 404 and foreign.json()["code"] == "ESIM_NOT_FOUND"
    async with runtime.sessions() as session, session.begin():
        await session.execute(update(Esim).where(Esim.iccid == iccid).values(status="EXPIRED"))
    expired = await api.post(TOPUP, {"iccid": iccid, "packageCode": packages[0]["package_code"]})
    assert expired.status_code == 400
    assert expired.json()["code"] == "ESIM_NOT_TOPPABLE"
    assert "EXPIRED" in expired.json()["error"]


async def test_cancel_refunds_every_unused_esim_once(api: SignedClient, runtime: Runtime) -> None:
    start = await balance(api)
    order = await buy(api, runtime, "Germany", quantity=3)
    first = order["esims"][0]["iccid"]
    response = await api.post(CANCEL, {"iccid": first})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["total_esims"] == data["cancelled_esims"] == 3
    assert data["partial_cancellation"] is False
    assert data["refunded_amount"] == order["amount"]
    assert await balance(api) == pytest.approx(start)
    again = await api.post(CANCEL, {"iccid": first})
    assert again.status_code == 400 and again.json()["code"] == "ALREADY_CANCELLED"
    assert await balance(api) == pytest.approx(start)
    status = await api.get(f"{ORDER}?orderReference={order['orderReference']}")
    assert status.json()["order"]["status"] == "cancelled"
    listed = (await api.get("/api/v1/business/esims?status=CANCELLED")).json()["data"]
    assert listed["pagination"]["total"] == 3


async def test_cancel_of_used_esims(api: SignedClient, runtime: Runtime) -> None:
    order = await buy(api, runtime, "Germany", quantity=2)
    installed = order["esims"][0]["iccid"]
    sim = await simulator(runtime)
    await sim.install(installed)
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Esim).where(Esim.iccid == installed).values(ever_installed=True)
        )
    partial = await api.post(CANCEL, {"iccid": installed})
    assert partial.status_code == 200, partial.text
    data = partial.json()["data"]
    assert data["cancelled_esims"] == 1 and data["partial_cancellation"] is True
    assert data["refunded_amount"] == pytest.approx(order["amount"] / 2)
    again = await api.post(CANCEL, {"iccid": installed})
    assert again.json()["code"] == "ALREADY_CANCELLED"
    async with runtime.sessions() as session:
        refunds = (
            (await session.execute(select(LedgerEntry).where(LedgerEntry.kind == "refund")))
            .scalars()
            .all()
        )
    assert len(refunds) == 1


async def test_cancel_not_eligible_and_identifiers(
    api: SignedClient, runtime: Runtime, make_account: Any
) -> None:
    order = await buy(api, runtime, "Germany")
    iccid = order["esims"][0]["iccid"]
    async with runtime.sessions() as session, session.begin():
        await session.execute(update(Esim).where(Esim.iccid == iccid).values(used_bytes=10))
    refused = await api.post(CANCEL, {"iccid": iccid})
    assert refused.status_code == 400 and refused.json()["code"] == "NOT_ELIGIBLE", refused.text
    assert refused.json()["details"]["esims"][0]["reason"] == "data used"
    assert (await api.post(CANCEL, {})).json()["code"] == "MISSING_IDENTIFIER"
    assert (await api.post(CANCEL, {"iccid": "89000"})).json()["code"] == "ESIM_NOT_FOUND"
    stranger = SignedClient(api.client, await make_account("other"), api.clock_ms)
    foreign = await stranger.post(CANCEL, {"iccid": iccid})
    assert foreign.status_code == 403 and foreign.json()["code"] == "FORBIDDEN"
    by_id = await stranger.post(CANCEL, {"esimId": order["esims"][0]["id"]})
    assert by_id.status_code == 403
