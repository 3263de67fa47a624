"""Every SSRF case of reliability.md is refused through the API (loopback receivers not allowed
here), and a name that turns private after registration is refused at delivery."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from sqlalchemy import select

from esimgate.runtime import Runtime
from esimgate.webhooks.models import Delivery
from esimgate.worker.engine import Worker
from tests.orders.test_place_order import ORDER, package
from tests.support import SignedClient

WEBHOOKS = "/api/v1/business/webhooks"
HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "169.254.169.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.0.1",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104 - a URL host under test, nothing binds to it
    "[fd00::1]",
    "[64:ff9b::7f00:1]",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
]


async def put(api: SignedClient, url: str) -> Any:
    body = json.dumps({"webhook_url": url}).encode()
    return await api.client.put(WEBHOOKS, content=body, headers=api.headers(body))


@pytest.mark.parametrize("host", HOSTS)
async def test_refused_at_registration(api: SignedClient, host: str) -> None:
    for scheme in ("https", "http"):
        response = await put(api, f"{scheme}://{host}/hook")
        assert response.status_code == 400, (host, response.text)
        assert response.json()["code"] == "INVALID_WEBHOOK_URL"


@pytest.mark.parametrize("host", HOSTS)
async def test_refused_as_order_callback_at_delivery(
    api: SignedClient, runtime: Runtime, host: str
) -> None:
    pkg = await package(runtime, "Turkey")
    await api.post(ORDER, {"packageCode": pkg["code"], "callbackUrl": f"http://{host}/cb"})
    await Worker(runtime).run_due()
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Delivery))).scalars().all()
    assert rows and all(r.last_error and r.last_error.startswith("refused") for r in rows)
    assert all(r.last_status_code is None for r in rows)


async def test_name_turning_private_is_refused_at_delivery(
    api: SignedClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {"hooks.example": "93.184.215.14"}

    async def fake_getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        address = answers.get(host)
        if address is None:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 443))]

    import asyncio

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
    registered = await put(api, "https://hooks.example/receive")
    assert registered.status_code == 200, registered.text
    answers["hooks.example"] = "10.0.0.5"  # DNS rebinding after registration
    pkg = await package(runtime, "Turkey")
    await api.post(ORDER, {"packageCode": pkg["code"]})
    await Worker(runtime).run_due()
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Delivery))).scalars().all()
    assert rows and all(r.last_error and "refused" in r.last_error for r in rows), [
        r.last_error for r in rows
    ]
