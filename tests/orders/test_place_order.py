"""POST /esims/order through HTTP: the money flow, idempotency, async provisioning."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.orders.models import Order
from esimgate.runtime import Runtime
from esimgate.wallet.models import LedgerEntry
from esimgate.worker.engine import Worker
from tests.support import SignedClient

ORDER = "/api/v1/business/esims/order"
LPA = re.compile(r"^LPA:1\$[^$]+\$[^$]+$")


async def package(runtime: Runtime, country: str, *, pending: bool = False) -> dict[str, Any]:
    """A local base package of the synced simulator catalogue, with its offer cost."""
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(CatalogPackage, PackageOffer.cost_e4)
                .join(PackageOffer, PackageOffer.package_id == CatalogPackage.id)
                .where(
                    CatalogPackage.kind == "local",
                    CatalogPackage.is_topup.is_(False),
                    CatalogPackage.region == country,
                    CatalogPackage.data_bytes.is_not(None),
                )
                .order_by(CatalogPackage.code)
            )
        ).all()
    assert rows, f"no package for {country}"
    chosen, cost_e4 = rows[0]
    return {"code": chosen.code, "name": chosen.name, "cost_e4": cost_e4}


def cents(cost_e4: int) -> int:
    """The account (no markup) price in cents: half up."""
    return (cost_e4 + 50) // 100


async def ledger_rows(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


async def test_order_completes_and_charges_once(api: SignedClient, runtime: Runtime) -> None:
    pkg = await package(runtime, "Turkey")
    response = await api.post(ORDER, {"packageCode": pkg["code"], "quantity": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    price = cents(pkg["cost_e4"])
    assert body["success"] is True
    assert body["status"] == "completed"
    assert body["isPending"] is False
    assert body["paymentMethod"] == "balance"
    assert body["amount"] == pytest.approx(2 * price / 100)
    assert body["newBalance"] == pytest.approx((150_000 - 2 * price) / 100)
    assert len(body["esims"]) == 2
    for esim in body["esims"]:
        assert re.fullmatch(r"89\d{17}", esim["iccid"]), esim
        assert LPA.match(esim["lpaString"])
        assert esim["qrCodeUrl"].startswith("data:image/png;base64,")
        assert esim["directAppleInstallUrl"].startswith("https://esimsetup.apple.com/")
        assert esim["status"] == "New"
    status = await api.get(f"{ORDER}?orderReference={body['orderReference']}")
    assert status.status_code == 200, status.text
    order = status.json()["order"]
    assert order["status"] == "completed"
    assert order["paymentStatus"] == "succeeded"
    assert [e["iccid"] for e in order["esims"]] == [e["iccid"] for e in body["esims"]]
    assert order["esim"]["qrCodeUrl"].endswith(".png")
    qr = await api.client.get(order["esim"]["qrCodeUrl"])
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/png"
    # reserve + capture: one charge
    assert await ledger_rows(runtime) == 1 + 2  # the test credit, reserve, capture


async def test_insufficient_balance_has_no_side_effects(
    api: SignedClient, runtime: Runtime, make_account: Any
) -> None:
    pkg = await package(runtime, "Japan")
    before = await ledger_rows(runtime)
    poor = SignedClient(api.client, await make_account("poor", balance_minor=1), api.clock_ms)
    response = await poor.post(ORDER, {"packageCode": pkg["code"]})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INSUFFICIENT_BALANCE"
    assert "0.01" in response.json()["message"]
    assert await ledger_rows(runtime) == before + 1  # only poor's own credit
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0


@pytest.mark.parametrize(
    ("price", "code"),
    [
        ("one-cent-more", "PRICE_MISMATCH"),
        ("as-string", "INVALID_PARAMETER"),
        (-1, "INVALID_PARAMETER"),
        (10**12, "INVALID_PARAMETER"),
        ("abc", "INVALID_PARAMETER"),
    ],
)
async def test_price_guard(api: SignedClient, runtime: Runtime, price: Any, code: str) -> None:
    pkg = await package(runtime, "France")
    exact = cents(pkg["cost_e4"]) / 100
    value = {"one-cent-more": round(exact + 0.01, 2), "as-string": str(exact)}.get(price, price)
    response = await api.post(ORDER, {"packageCode": pkg["code"], "price": value})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert await ledger_rows(runtime) == 1


async def test_matching_price_guard_passes(api: SignedClient, runtime: Runtime) -> None:
    pkg = await package(runtime, "France")
    exact = cents(pkg["cost_e4"]) / 100
    response = await api.post(ORDER, {"packageCode": pkg["code"], "price": exact})
    assert response.status_code == 200, response.text
    assert response.json()["amount"] == pytest.approx(exact)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, "MISSING_FIELDS"),
        ({"packageCode": ""}, "MISSING_FIELDS"),
        ({"packageCode": "NOSUCHPKG"}, "INVALID_PACKAGE"),
        ({"packageCode": "X", "quantity": 0}, "INVALID_PARAMETER"),
        ({"packageCode": "X", "quantity": 11}, "INVALID_PARAMETER"),
        ({"packageCode": "X", "quantity": "2"}, "INVALID_PARAMETER"),
        ({"packageCode": "X", "quantity": True}, "INVALID_PARAMETER"),
        ({"packageCode": 5}, "INVALID_PARAMETER"),
        ({"packageCode": "X", "callbackUrl": "ftp://x"}, "INVALID_PARAMETER"),
        ([1, 2], "INVALID_PARAMETER"),
    ],
)
async def test_bad_bodies_are_4xx(api: SignedClient, payload: Any, code: str) -> None:
    response = await api.post(ORDER, payload)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code


async def test_invalid_json_is_400(api: SignedClient) -> None:
    headers = api.headers(b"{not json")
    response = await api.client.post(ORDER, content=b"{not json", headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_PARAMETER"


async def test_legacy_fields_are_ignored(api: SignedClient, runtime: Runtime) -> None:
    pkg = await package(runtime, "Germany")
    response = await api.post(
        ORDER,
        {"packageCode": pkg["code"], "packageName": "x", "duration": 7, "flagUrl": "/f.png"},
    )
    assert response.status_code == 200, response.text


async def test_idempotency_key_replays_and_guards(api: SignedClient, runtime: Runtime) -> None:
    pkg = await package(runtime, "Italy")
    payload = {"packageCode": pkg["code"], "idempotency_key": "buy-1"}
    first = await api.post(ORDER, payload)
    again = await api.post(ORDER, payload)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["orderReference"] == first.json()["orderReference"]
    other = await api.post(ORDER, {**payload, "quantity": 2})
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    header = await api.client.post(
        ORDER,
        content=b'{"packageCode": "%s"}' % pkg["code"].encode(),
        headers={
            **api.headers(b'{"packageCode": "%s"}' % pkg["code"].encode()),
            "Idempotency-Key": "buy-1",
        },
    )
    assert header.status_code == 200, header.text
    assert header.json()["orderReference"] == first.json()["orderReference"]
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1


async def test_replayed_request_id_names_the_order(api: SignedClient, runtime: Runtime) -> None:
    pkg = await package(runtime, "Spain")
    body = b'{"packageCode": "%s"}' % pkg["code"].encode()
    headers = {**api.headers(body), "Content-Type": "application/json"}
    first = await api.client.post(ORDER, content=body, headers=headers)
    assert first.status_code == 200, first.text
    replay = await api.client.post(ORDER, content=body, headers=headers)
    assert replay.status_code == 409, replay.text
    details = replay.json()["details"]
    assert details["orderReference"] == first.json()["orderReference"]
    assert details["status"] == "completed"
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1


async def test_async_provisioning_completes_later(
    api: SignedClient, runtime: Runtime, clock: Any
) -> None:
    pkg = await package(runtime, "Japan")
    response = await api.post(ORDER, {"packageCode": pkg["code"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "pending_details"
    assert body["isPending"] is True
    assert body["esims"] == []
    reference = body["orderReference"]
    pending = (await api.get(f"{ORDER}?orderReference={reference}")).json()["order"]
    assert pending["status"] == "pending_details"
    assert pending["esim"]["iccid"] is None
    clock.advance(seconds=31)
    assert await Worker(runtime).run_due() >= 1
    done = (await api.get(f"{ORDER}?orderReference={reference}")).json()["order"]
    assert done["status"] == "completed", done
    assert re.fullmatch(r"89\d{17}", done["esim"]["iccid"])


async def test_other_accounts_order_is_not_found(
    api: SignedClient, runtime: Runtime, make_account: Any
) -> None:
    pkg = await package(runtime, "Greece")
    reference = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()["orderReference"]
    stranger = SignedClient(api.client, await make_account("stranger"), api.clock_ms)
    response = await stranger.get(f"{ORDER}?orderReference={reference}")
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "ORDER_NOT_FOUND"
