"""Webhooks end to end with real HTTP receivers on loopback: settings, signatures, retries,
redirects, callbacks, crash recovery, SSRF at registration and delivery, and an async order."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select, update
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from esimgate.config import Settings
from esimgate.runtime import Runtime
from esimgate.webhooks.models import Delivery
from esimgate.worker.engine import Worker
from esimgate.worker.models import Job
from tests.conftest import _settings
from tests.orders.test_place_order import ORDER, package
from tests.support import SignedClient

WEBHOOKS = "/api/v1/business/webhooks"


@pytest.fixture
def settings(database_url: str, _schema: None, tmp_path: Path) -> Settings:
    return _settings(database_url, tmp_path, webhook_allow_loopback=True)


@dataclass
class Receiver:
    """A loopback HTTP server recording what it is sent; answers from a script of statuses."""

    base: str = ""
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.received.append((request.url.path, dict(request.headers), body))
        status = self.script.pop(0) if self.script else 200
        if 300 <= status < 400:
            return Response(status_code=status, headers={"Location": f"{self.base}/elsewhere"})
        return Response("receiver says: private", status_code=status)

    def at(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for p, h, b in self.received if p == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recorder = Receiver()
    app = Starlette(routes=[Route("/{path:path}", recorder.handle, methods=["POST"])])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    recorder.base = f"http://127.0.0.1:{port}"
    try:
        yield recorder
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def setup_hook(api: SignedClient, url: str, events: list[str] | None = None) -> str:
    payload: dict[str, Any] = {"webhook_url": url}
    if events is not None:
        payload["events"] = events
    response = await api.client.put(
        WEBHOOKS,
        content=json.dumps(payload).encode(),
        headers=api.headers(json.dumps(payload).encode()),
    )
    assert response.status_code == 200, response.text
    secret: str = response.json()["webhook"]["secret"]
    assert secret.startswith("whsec_")
    return secret


def verify_both(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-webhook-signature"], expected)
    standard = {k: headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    Webhook(secret).verify(body, standard)
    assert headers["x-webhook-id"] == headers["webhook-id"]
    assert headers["user-agent"].startswith("esimgate-webhook/")
    parsed: dict[str, Any] = json.loads(body)
    assert headers["x-webhook-event"] == parsed["event"]
    return parsed


async def put(api: SignedClient, payload: dict[str, Any]) -> Any:
    body = json.dumps(payload).encode()
    return await api.client.put(WEBHOOKS, content=body, headers=api.headers(body))


async def test_settings_secret_shown_once_and_rotation(
    api: SignedClient, receiver: Receiver
) -> None:
    secret = await setup_hook(api, f"{receiver.base}/hook", ["order.completed"])
    again = await put(api, {"webhook_url": f"{receiver.base}/other", "events": ["order.failed"]})
    assert again.status_code == 200 and "secret" not in again.json()["webhook"]
    view = (await api.get(WEBHOOKS)).json()
    assert view["webhook"] == {"url": f"{receiver.base}/other", "events": ["order.failed"]}
    assert "order.completed" in view["available_events"] and "secret" not in json.dumps(view)
    rotated = await api.post(f"{WEBHOOKS}/rotate-secret")
    assert rotated.json()["webhook"]["secret"] not in (secret, None)
    bad = await put(api, {"webhook_url": f"{receiver.base}/x", "events": ["nope"]})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_PARAMETER"


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.0.1",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - a URL host under test, nothing binds to it
        "[fd00::1]",
        "[64:ff9b::7f00:1]",
    ],
)
async def test_private_and_metadata_urls_are_refused_at_registration(
    api: SignedClient, host: str
) -> None:
    for scheme in ("http", "https"):
        response = await put(api, {"webhook_url": f"{scheme}://{host}/hook"})
        assert response.status_code == 400, (host, response.text)
        assert response.json()["code"] == "INVALID_WEBHOOK_URL"


async def test_order_events_are_delivered_signed(
    api: SignedClient, runtime: Runtime, receiver: Receiver
) -> None:
    secret = await setup_hook(api, f"{receiver.base}/hook")
    pkg = await package(runtime, "Turkey")
    order = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()
    assert await Worker(runtime).run_due() >= 2
    bodies = [verify_both(secret, h, b) for h, b in receiver.at("/hook")]
    assert sorted(b["event"] for b in bodies) == ["esim.provisioned", "order.completed"]
    provisioned = next(b for b in bodies if b["event"] == "esim.provisioned")
    assert provisioned["data"]["iccid"] == order["esims"][0]["iccid"]
    recent = (await api.get(WEBHOOKS)).json()["recent_deliveries"]
    assert {r["status"] for r in recent} == {"delivered"} and len(recent) == 2
    assert {r["order_reference"] for r in recent} == {order["orderReference"]}
    assert "receiver says" not in json.dumps(recent)


async def test_retry_schedule_then_failed(
    api: SignedClient, runtime: Runtime, receiver: Receiver, clock: Any
) -> None:
    await setup_hook(api, f"{receiver.base}/hook", ["order.completed"])
    receiver.script = [500] * 10
    pkg = await package(runtime, "Turkey")
    await api.post(ORDER, {"packageCode": pkg["code"]})
    worker = Worker(runtime)
    assert await worker.run_due() == 1  # immediately
    for wait in (10, 30, 120, 600):
        clock.advance(seconds=wait - 0.5)
        assert await worker.run_due() == 0, f"attempt before {wait} s"
        clock.advance(seconds=0.5)
        assert await worker.run_due() == 1, f"attempt at {wait} s"
    clock.advance(hours=1)
    assert await worker.run_due() == 0
    hook = receiver.at("/hook")
    assert len(hook) == 5
    assert len({h["webhook-id"] for h, _ in hook}) == 1  # one id across attempts
    async with runtime.sessions() as session:
        delivery = (await session.execute(select(Delivery))).scalar_one()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 5, 500)


async def test_redirects_are_failures_not_followed(
    api: SignedClient, runtime: Runtime, receiver: Receiver
) -> None:
    await setup_hook(api, f"{receiver.base}/hook", ["order.completed"])
    receiver.script = [302]
    pkg = await package(runtime, "Turkey")
    await api.post(ORDER, {"packageCode": pkg["code"]})
    await Worker(runtime).run_due()
    assert receiver.at("/elsewhere") == []
    recent = (await api.get(WEBHOOKS)).json()["recent_deliveries"]
    assert recent[0]["status"] == "pending" and recent[0]["last_status_code"] == 302


async def test_callback_url_overrides_the_endpoint(
    api: SignedClient, runtime: Runtime, receiver: Receiver
) -> None:
    await setup_hook(api, f"{receiver.base}/hook")
    pkg = await package(runtime, "Turkey")
    await api.post(ORDER, {"packageCode": pkg["code"], "callbackUrl": f"{receiver.base}/cb"})
    await Worker(runtime).run_due()
    assert sorted(json.loads(b)["event"] for _, b in receiver.at("/cb")) == [
        "esim.provisioned",
        "order.completed",
    ]
    assert receiver.at("/hook") == []


async def test_callback_without_settings_is_signed_with_a_rotatable_secret(
    api: SignedClient, runtime: Runtime, receiver: Receiver
) -> None:
    pkg = await package(runtime, "Turkey")
    await api.post(ORDER, {"packageCode": pkg["code"], "callbackUrl": f"{receiver.base}/cb"})
    secret = (await api.post(f"{WEBHOOKS}/rotate-secret")).json()["webhook"]["secret"]
    await Worker(runtime).run_due()
    for headers, body in receiver.at("/cb"):
        verify_both(secret, headers, body)
    assert len(receiver.at("/cb")) == 2


async def test_a_crash_loses_nothing_and_keeps_the_webhook_id(
    api: SignedClient, runtime: Runtime, receiver: Receiver, clock: Any
) -> None:
    await setup_hook(api, f"{receiver.base}/hook", ["order.completed"])
    pkg = await package(runtime, "Turkey")
    await api.post(ORDER, {"packageCode": pkg["code"]})
    # The process died right after the order committed: nothing was sent, the rows are there.
    assert receiver.at("/hook") == []
    # A worker claims the job and dies mid-send (lease taken, no outcome recorded).
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Job)
            .where(Job.kind == "webhooks.deliver")
            .values(
                status="running",
                locked_until=clock.now() + timedelta(minutes=5),
            )
        )
    assert await Worker(runtime).run_due() == 0
    clock.advance(minutes=6)  # the lease ends: another worker takes it
    assert await Worker(runtime).run_due() == 1
    hook = receiver.at("/hook")
    assert len(hook) == 1
    async with runtime.sessions() as session:
        delivery = (await session.execute(select(Delivery))).scalar_one()
    assert hook[0][0]["webhook-id"] == delivery.webhook_id
    assert delivery.status == "delivered"


async def test_delivery_checks_the_url_again(
    api: SignedClient, runtime: Runtime, receiver: Receiver
) -> None:
    await setup_hook(api, f"{receiver.base}/hook", ["order.completed"])
    runtime.settings.webhook_allow_loopback = False  # as if the name now pointed inward
    pkg = await package(runtime, "Turkey")
    await api.post(ORDER, {"packageCode": pkg["code"]})
    await Worker(runtime).run_due()
    assert receiver.at("/hook") == []
    async with runtime.sessions() as session:
        delivery = (await session.execute(select(Delivery))).scalar_one()
    assert delivery.last_error is not None and delivery.last_error.startswith("refused")


async def test_async_order_end_to_end(
    api: SignedClient, runtime: Runtime, receiver: Receiver, clock: Any
) -> None:
    secret = await setup_hook(api, f"{receiver.base}/hook")
    pkg = await package(runtime, "Japan")
    body = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()
    assert body["status"] == "pending_details"
    worker = Worker(runtime)
    await worker.run_due()
    assert receiver.at("/hook") == []
    clock.advance(seconds=31)
    await worker.run_due()
    await worker.run_due()
    events = {
        parsed["event"]: parsed
        for parsed in (verify_both(secret, h, b) for h, b in receiver.at("/hook"))
    }
    assert set(events) == {"esim.provisioned", "order.completed"}
    data = events["esim.provisioned"]["data"]
    assert data["orderReference"] == body["orderReference"]
    assert data["iccid"].startswith("89") and data["lpaString"].startswith("LPA:1$")
    assert data["directAppleInstallUrl"].startswith("https://esimsetup.apple.com/")
    assert data["directAndroidInstallUrl"].startswith("https://esimsetup.android.com/")


async def test_test_event_and_metrics(
    api: SignedClient, runtime: Runtime, receiver: Receiver
) -> None:
    missing = await api.post(f"{WEBHOOKS}/test")
    assert missing.status_code == 404, missing.text
    secret = await setup_hook(api, f"{receiver.base}/hook")
    sent = await api.post(f"{WEBHOOKS}/test")
    assert sent.status_code == 200, sent.text
    assert sent.json()["success"] is True
    assert sent.json()["delivery"]["status"] == "delivered"
    ((headers, body),) = receiver.at("/hook")
    assert verify_both(secret, headers, body)["event"] == "webhook.test"
    receiver.script = [500]
    failing = (await api.post(f"{WEBHOOKS}/test")).json()
    assert failing["success"] is False and failing["delivery"]["last_status_code"] == 500
    assert "receiver says" not in json.dumps(failing)
    metrics = (await api.client.get("/metrics")).text
    assert 'esimgate_webhook_deliveries{status="delivered"} 1' in metrics
    assert 'esimgate_webhook_deliveries{status="failed"} 1' in metrics
    assert "esimgate_webhook_attempts_total 2" in metrics
