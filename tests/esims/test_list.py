"""GET /esims and GET /orders through HTTP."""

from __future__ import annotations

import re

from esimgate.runtime import Runtime
from tests.orders.test_place_order import ORDER, package
from tests.support import SignedClient

ESIMS = "/api/v1/business/esims"
ORDERS = "/api/v1/business/orders"


async def test_esim_list_shape_and_filters(api: SignedClient, runtime: Runtime) -> None:
    pkg = await package(runtime, "Sweden")
    order = (await api.post(ORDER, {"packageCode": pkg["code"], "quantity": 2})).json()
    listed = await api.get(f"{ESIMS}?include_base64=true")
    assert listed.status_code == 200, listed.text
    data = listed.json()["data"]
    assert data["pagination"] == {"page": 1, "limit": 20, "total": 2, "total_pages": 1}
    esim = data["esims"][0]
    assert esim["status"] == "NEW"
    assert esim["countries"] == ["Sweden"]
    assert esim["data"]["used_mb"] == 0 and esim["data"]["is_unlimited"] is False
    assert esim["data"]["remaining_mb"] == esim["data"]["total_mb"] > 0
    lpa = esim["manual_installation"]["lpa_format"]
    assert (
        lpa
        == f"LPA:1${esim['manual_installation']['smdp_address']}$"
        + (esim["manual_installation"]["activation_code"])
    )
    assert re.fullmatch(r"http://esimgate\.test/qr/[\w-]+\.png", esim["qr_code"])
    assert esim["qr_code_base64"]
    assert "qr_code_base64" not in (await api.get(ESIMS)).json()["data"]["esims"][0]
    svg = await api.client.get(esim["qr_code"].replace(".png", ".svg"))
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert (await api.get(f"{ESIMS}?search={esim['iccid']}")).json()["data"]["pagination"][
        "total"
    ] == 1
    assert (await api.get(f"{ESIMS}?search=sweden")).json()["data"]["pagination"]["total"] == 2
    assert (await api.get(f"{ESIMS}?status=ACTIVE")).json()["data"]["pagination"]["total"] == 0
    bad = await api.get(f"{ESIMS}?status=FROZEN")
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_PARAMETER"
    assert order["orderReference"]


async def test_order_history_filters_and_summary(api: SignedClient, runtime: Runtime) -> None:
    cheap = await package(runtime, "Turkey")
    dear = await package(runtime, "Japan")
    first = (await api.post(ORDER, {"packageCode": cheap["code"]})).json()
    second = (await api.post(ORDER, {"packageCode": dear["code"]})).json()
    everything = (await api.get(ORDERS)).json()["data"]
    assert everything["summary"]["total_orders"] == 2
    completed = first["amount"]  # the Japanese order is still pending_details
    assert everything["summary"]["total_revenue"] == completed
    by_amount = (await api.get(f"{ORDERS}?sort_by=amount&sort_order=asc")).json()["data"]
    amounts = [o["amount"] for o in by_amount["orders"]]
    assert amounts == sorted(amounts)
    pending = (await api.get(f"{ORDERS}?status=pending")).json()["data"]
    assert [o["order_reference"] for o in pending["orders"]] == [second["orderReference"]]
    found = (await api.get(f"{ORDERS}?search={first['orderReference']}")).json()["data"]
    assert found["summary"]["total_orders"] == 1
    later = (await api.get(f"{ORDERS}?from_date=2999-01-01")).json()["data"]
    assert later["summary"]["total_orders"] == 0
    for bad in ("from_date=yesterday", "sort_by=price", "sort_order=up", "status=lost"):
        response = await api.get(f"{ORDERS}?{bad}")
        assert response.status_code == 400, bad
        assert response.json()["code"] == "INVALID_PARAMETER"
