"""Asynchronous provisioning that ends in failure, and the reconcile command."""

from __future__ import annotations

from typing import Any

from esimgate.providers.base import OrderRequest, Provider, Purchase, PurchaseState
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.runtime import Runtime
from esimgate.worker.engine import Worker
from tests.orders.test_place_order import ORDER, package
from tests.support import SignedClient


class AcceptsThenFails:
    """An upstream that accepts every order for later and then reports it failed."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.capabilities = inner.capabilities
        self.max_usage_batch = inner.max_usage_batch

    async def create_order(self, request: OrderRequest) -> Purchase:
        return Purchase(request.reference, PurchaseState.PENDING, provider_order_id="X-1")

    async def get_order(
        self, reference: str, provider_order_id: str | None = None
    ) -> Purchase | None:
        return Purchase(reference, PurchaseState.FAILED, failure_reason="no stock after all")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_async_order_that_fails_is_released(
    api: SignedClient, runtime: Runtime, clock: Any
) -> None:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name("simulator")
    assert account is not None
    runtime.providers.override(account.id, AcceptsThenFails(runtime.providers.adapter(account)))  # type: ignore[arg-type]
    pkg = await package(runtime, "Austria")
    before = (await api.get("/api/v1/business/balance")).json()["data"]["balance"]
    body = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()
    assert body["status"] == "pending_details", body
    held = (await api.get("/api/v1/business/balance")).json()["data"]["balance"]
    assert held < before
    clock.advance(seconds=11)
    assert await Worker(runtime).run_due() >= 1
    order = (await api.get(f"{ORDER}?orderReference={body['orderReference']}")).json()["order"]
    assert order["status"] == "failed"
    assert order["paymentStatus"] == "failed"
    after = (await api.get("/api/v1/business/balance")).json()["data"]["balance"]
    assert after == before
