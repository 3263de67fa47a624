"""Inbound provider webhooks: verified, deduplicated, stored raw, confirmed by asking."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from esimgate.orders.models import Order
from esimgate.providers.base import Capability, LogicalError, LogicalReason, ProviderNotice
from esimgate.providers.inbound import ProviderWebhook
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.providers.simulator.adapter import SimulatorProvider
from esimgate.runtime import Runtime
from esimgate.worker.engine import Worker
from tests.orders.test_place_order import ORDER, package
from tests.support import SignedClient

SECRET = b"upstream-shared-secret"


class SigningSimulator:
    """The simulator plus a signed webhook feed, as an upstream with webhooks would have."""

    def __init__(self, inner: SimulatorProvider) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.capabilities = inner.capabilities | {Capability.WEBHOOKS}
        self.max_usage_batch = inner.max_usage_batch
        self.requests_per_second = inner.requests_per_second
        self.get_calls = 0
        self.asked_with: list[tuple[str, str | None]] = []

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, client_ip: str
    ) -> ProviderNotice:
        expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("x-signature", ""), expected):
            raise LogicalError(LogicalReason.REJECTED, "bad signature")
        data = json.loads(body)
        return ProviderNotice(
            event_id=data["id"],
            kind=data["type"],
            reference=data.get("reference"),
            provider_order_id=data.get("order_id"),
        )

    async def get_order(self, reference: str, provider_order_id: str | None = None) -> Any:
        self.get_calls += 1
        self.asked_with.append((reference, provider_order_id))
        return await self.inner.get_order(reference, provider_order_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def signed(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"x-signature": hmac.new(SECRET, body, hashlib.sha256).hexdigest()}


async def signing_simulator(runtime: Runtime) -> SigningSimulator:
    """The session's simulator account, served through a SigningSimulator from now on."""
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name("simulator")
    assert account is not None
    real = runtime.providers.adapter(account)
    assert isinstance(real, SimulatorProvider)
    feed = SigningSimulator(real)
    runtime.providers.override(account.id, feed)  # type: ignore[arg-type]
    return feed


async def test_inbound_webhook_is_verified_deduplicated_and_confirmed(
    api: SignedClient, runtime: Runtime, clock: Any
) -> None:
    feed = await signing_simulator(runtime)
    pkg = await package(runtime, "Japan")  # provisions asynchronously
    order = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()
    assert order["status"] == "pending_details"
    path = "/api/v1/providers/simulator/webhooks"
    notice = {"id": "evt-1", "type": "ORDER_READY", "reference": order["orderReference"]}

    body, headers = signed(notice)
    tampered = await api.client.post(path, content=body + b" ", headers=headers)
    assert tampered.status_code == 401 and tampered.json()["code"] == "INVALID_SIGNATURE"
    unsigned = await api.client.post(path, content=body)
    assert unsigned.status_code == 401
    unknown = await api.client.post("/api/v1/providers/nobody/webhooks", content=body)
    assert unknown.status_code == 404

    clock.advance(seconds=31)  # the upstream has really finished by now
    first = await api.client.post(path, content=body, headers=headers)
    assert first.json() == {"success": True, "duplicate": False}
    replay = await api.client.post(path, content=body, headers=headers)
    assert replay.json() == {"success": True, "duplicate": True}

    await Worker(runtime).run_due()
    status = (await api.get(f"{ORDER}?orderReference={order['orderReference']}")).json()
    assert status["order"]["status"] == "completed"
    assert feed.get_calls >= 1  # the state came from asking, not from the notification
    async with runtime.sessions() as session:
        rows = (await session.execute(select(ProviderWebhook))).scalars().all()
    assert len(rows) == 1 and rows[0].outcome == "order completed"
    assert json.loads(rows[0].body) == notice


async def test_notice_naming_only_the_upstream_order_finds_ours(
    api: SignedClient, runtime: Runtime, clock: Any
) -> None:
    """Some upstreams (esimfly) name only their own order id: it maps through the id stored
    on the order, and the confirmation asks the upstream with it."""
    feed = await signing_simulator(runtime)
    pkg = await package(runtime, "Japan")
    order = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()
    reference = order["orderReference"]
    async with runtime.sessions() as session:
        stored = await session.scalar(select(Order).where(Order.reference == reference))
    assert stored is not None and stored.provider_order_id
    clock.advance(seconds=31)
    body, headers = signed({"id": "evt-2", "type": "ORDER_READY", "order_id": "nobody's"})
    await api.client.post("/api/v1/providers/simulator/webhooks", content=body, headers=headers)
    body, headers = signed(
        {"id": "evt-3", "type": "ORDER_READY", "order_id": stored.provider_order_id}
    )
    answer = await api.client.post(
        "/api/v1/providers/simulator/webhooks", content=body, headers=headers
    )
    assert answer.json() == {"success": True, "duplicate": False}
    await Worker(runtime).run_due()
    status = (await api.get(f"{ORDER}?orderReference={reference}")).json()
    assert status["order"]["status"] == "completed"
    assert (reference, stored.provider_order_id) in feed.asked_with
    async with runtime.sessions() as session:
        outcomes = dict(
            (await session.execute(select(ProviderWebhook.event_id, ProviderWebhook.outcome))).all()
        )
    assert outcomes == {"evt-2": "nothing of ours", "evt-3": "order completed"}


async def test_head_probe(api: SignedClient, runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name("simulator")
    assert account is not None
    path = "/api/v1/providers/simulator/webhooks"
    assert (await api.client.head(path)).status_code == 404  # the simulator sends none
    real = runtime.providers.adapter(account)
    assert isinstance(real, SimulatorProvider)
    runtime.providers.override(account.id, SigningSimulator(real))  # type: ignore[arg-type]
    assert (await api.client.head(path)).status_code == 200
