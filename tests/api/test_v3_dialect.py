"""The seed-000 v3 dialect: token, eSIM, refresh, its envelope and its errors."""

from __future__ import annotations

from typing import Any

import httpx

from esimgate.runtime import Runtime
from tests.esims.test_lifecycle import simulator
from tests.orders.test_place_order import ORDER, package
from tests.support import Credentials, SignedClient

V3 = "/api/v3"


async def token(client: httpx.AsyncClient, creds: Credentials) -> str:
    response = await client.post(
        f"{V3}/auth/token",
        json={
            "appId": creds.access_code,
            "secretKey": creds.secret_key,
            "grantType": "client_credentials",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["status"] == 200
    assert set(body["meta"]) == {"requestId", "timestamp"}
    value: str = body["data"]["accessToken"]
    return value


def check_shape(data: dict[str, Any]) -> None:
    assert set(data) == {
        "esimId",
        "iccid",
        "status",
        "package",
        "usage",
        "validity",
        "activation",
        "createdAt",
    }
    assert set(data["package"]) == {"id", "name", "destination", "dataGb", "validityDays"}
    assert set(data["usage"]) == {"dataUsedMb", "dataTotalMb", "dataRemainingMb", "percentageUsed"}
    assert set(data["validity"]) == {"activatedAt", "expiresAt", "daysRemaining"}
    assert set(data["activation"]) == {"qrCodeUrl", "manualCode", "appleInstallUrl"}


async def test_v3_esim_and_refresh(
    api: SignedClient, runtime: Runtime, creds: Credentials, clock: Any
) -> None:
    real, counting = await simulator(runtime)
    pkg = await package(runtime, "Brazil")
    order = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()
    iccid = order["esims"][0]["iccid"]
    bearer = {"Authorization": f"Bearer {await token(api.client, creds)}"}

    got = await api.client.get(f"{V3}/esim/{iccid}", headers=bearer)
    assert got.status_code == 200, got.text
    data = got.json()["data"]
    check_shape(data)
    assert data["status"] == "ready"
    assert data["activation"]["manualCode"].startswith("LPA:1$")
    by_id = await api.client.get(f"{V3}/esim/{data['esimId']}", headers=bearer)
    assert by_id.json()["data"]["iccid"] == iccid

    await real.install(iccid)
    refreshed = await api.client.post(f"{V3}/esim/{iccid}/refresh", headers=bearer)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["data"]["status"] == "inactive"
    await real.attach(iccid)
    await real.use(iccid, 64)
    throttled = await api.client.post(f"{V3}/esim/{iccid}/refresh", headers=bearer)
    assert throttled.json()["meta"]["cached"] is True
    assert throttled.json()["data"]["usage"]["dataUsedMb"] == 0
    clock.advance(seconds=60)
    fresh = await api.client.post(f"{V3}/esim/{iccid}/refresh", headers=bearer)
    assert fresh.json()["data"]["status"] == "active"
    assert fresh.json()["data"]["usage"]["dataUsedMb"] == 64
    assert counting.usage_calls == 2
    # v1 sees the same stored data
    v1 = (await api.get(f"/api/v1/business/esims/usage/query?iccid={iccid}")).json()
    assert v1["data"]["data"]["used_mb"] == 64


async def test_v3_errors(
    api: SignedClient, runtime: Runtime, creds: Credentials, make_account: Any
) -> None:
    bearer = {"Authorization": f"Bearer {await token(api.client, creds)}"}
    missing = await api.client.get(f"{V3}/esim/8900000000000000000", headers=bearer)
    assert missing.status_code == 404
    body = missing.json()
    assert body["success"] is False and body["status"] == 404
    assert body["error"]["code"] == "ESIM_NOT_FOUND"
    pkg = await package(runtime, "Brazil")
    iccid = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()["esims"][0]["iccid"]
    other = await make_account("other")
    foreign = await api.client.get(
        f"{V3}/esim/{iccid}", headers={"Authorization": f"Bearer {await token(api.client, other)}"}
    )
    assert foreign.status_code == 404
    bad = await api.client.post(f"{V3}/auth/token", json={"appId": "x", "secretKey": "y"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "INVALID_API_KEY"
    garbage = await api.client.get(f"{V3}/esim/{iccid}", headers={"Authorization": "Bearer nope"})
    assert garbage.status_code == 401 and garbage.json()["error"]["code"] == "INVALID_TOKEN"
    _, counting = await simulator(runtime)
    from esimgate.providers.base import TechnicalError

    counting.fail = TechnicalError("down", committed=None)
    down = await api.client.post(f"{V3}/esim/{iccid}/refresh", headers=bearer)
    assert down.status_code == 503 and down.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
