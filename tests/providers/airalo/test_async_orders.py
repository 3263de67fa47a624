"""Airalo asynchronous orders (doc §5.3: POST /v2/orders-async → 202 + request_id, result by
webhook) against the fake Airalo upstream, and through esimgate's own order flow."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import delete, select, update

from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.clock import Clock, FrozenClock
from esimgate.orders.models import Order
from esimgate.providers.airalo.adapter import AiraloProvider, is_request_id
from esimgate.providers.airalo.client import PRODUCTION_URL, AiraloClient
from esimgate.providers.base import (
    Capability,
    LogicalError,
    LogicalReason,
    Money,
    OrderRequest,
    Purchase,
    PurchaseState,
    TechnicalError,
)
from esimgate.providers.models import ProviderAccount
from esimgate.providers.registry import AdapterConfig
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.providers.service import SIMULATOR, sync_catalogue
from esimgate.runtime import Runtime
from esimgate.worker.engine import Worker
from tests.conftest import _truncate
from tests.fakes.airalo import (
    CLIENT_ID,
    CLIENT_SECRET,
    NOT_OPTED_IN,
    FakeAiraloState,
    make_app,
)
from tests.providers.airalo.test_adapter import NOW
from tests.support import SignedClient

HOOK = "https://esimgate.example/api/v1/providers/airalo-main/webhooks"
IP = "203.0.113.7"
PACKAGE = "change-7days-1gb"


def build(
    transport: httpx.AsyncBaseTransport,
    clock: Clock,
    *,
    async_orders: bool = True,
    webhook_url: str | None = HOOK,
) -> AiraloProvider:
    http = httpx.AsyncClient(transport=transport, base_url=PRODUCTION_URL, follow_redirects=False)
    return AiraloProvider(
        AiraloClient(http, CLIENT_ID, CLIENT_SECRET, clock=clock),
        clock=clock,
        webhook_secret=CLIENT_SECRET,
        async_orders=async_orders,
        webhook_url=webhook_url,
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def state() -> FakeAiraloState:
    return FakeAiraloState()


@pytest.fixture
def transport(state: FakeAiraloState) -> httpx.ASGITransport:
    app, _ = make_app(state)
    return httpx.ASGITransport(app=app)


@pytest.fixture
async def provider(
    transport: httpx.ASGITransport, clock: FrozenClock
) -> AsyncIterator[AiraloProvider]:
    adapter = build(transport, clock)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def restarted(
    transport: httpx.ASGITransport, clock: FrozenClock
) -> AsyncIterator[AiraloProvider]:
    """A second adapter on the same upstream: another process, or this one after a restart."""
    adapter = build(transport, clock)
    yield adapter
    await adapter.aclose()


def order(reference: str, package: str = PACKAGE, quantity: int = 1) -> OrderRequest:
    return OrderRequest(reference, package, quantity)


def hmac512(body: bytes, secret: str = CLIENT_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


# --- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3NhR3gKmqCWK7IWppurpDX3Cg", True),  # doc §5.3
        ("9HrK4-KGgz8n71eGgdNS5cV7Y", True),  # doc §5.4 (future orders)
        ("1234567890123456789012345", True),  # 25 characters: a nanoid that is all digits
        ("583747", False),  # an Airalo order id
        ("1", False),
        ("abc_DEF-12", True),  # another length: errs towards PENDING, never towards a refund
        ("", False),
        (None, False),
        ("has space", False),
        ("3NhR3gKmqCWK7IWppurpDX3Cg/x", False),
    ],
)
def test_request_ids_are_told_from_order_ids(value: str | None, expected: bool) -> None:
    assert is_request_id(value) is expected


# --- the async order life cycle ---------------------------------------------------------------


async def test_async_order_is_pending_until_airalo_makes_it(
    provider: AiraloProvider, restarted: AiraloProvider, state: FakeAiraloState
) -> None:
    placed = await provider.create_order(order("ord_a1"))
    [accepted] = state.async_requests.values()
    assert placed == Purchase(
        "ord_a1", PurchaseState.PENDING, provider_order_id=accepted.request_id
    )
    assert len(accepted.request_id) == 25
    assert state.orders == []  # nothing bought yet
    # The signed body: our reference in description, our webhook URL, "/" escaped.
    assert state.last_bodies["/v2/orders-async"] == (
        b'{"package_id":"change-7days-1gb","quantity":1,"type":"sim","description":"ord_a1",'
        b'"webhook_url":"https:\\/\\/esimgate.example\\/api\\/v1\\/providers\\/airalo-main'
        b'\\/webhooks"}'
    )
    assert state.signatures_checked == 1
    assert accepted.webhook_url == HOOK
    assert accepted.description == "ord_a1"

    request_id = accepted.request_id
    pending = Purchase("ord_a1", PurchaseState.PENDING, provider_order_id=request_id)
    # This process remembers the request; another one is told it by esimgate.
    assert await provider.get_order("ord_a1") == pending
    assert await restarted.get_order("ord_a1", request_id) == pending
    # Knowing nothing of it (no request id, no memory), an async account cannot tell "never
    # sent" from "accepted, not made yet": pending with no id (refunded at the pending
    # deadline), never None (refunded at once while Airalo may still make it).
    assert await restarted.get_order("ord_a1") == Purchase("ord_a1", PurchaseState.PENDING)

    [delivery] = state.complete_async()
    assert delivery.url == HOOK
    [made] = state.orders
    for adapter, stored in ((provider, None), (restarted, request_id), (restarted, None)):
        done = await adapter.get_order("ord_a1", stored)
        assert done is not None
        assert done.state is PurchaseState.COMPLETED
        assert done.provider_order_id == str(made["id"])
        assert [e.iccid for e in done.esims] == [s["iccid"] for s in made["sims"]]
        assert done.esims[0].lpa == made["sims"][0]["qrcode"]
        assert done.unit_cost == Money(11_000, "USD")


async def test_retrying_an_async_order_does_not_buy_twice(
    provider: AiraloProvider, restarted: AiraloProvider, state: FakeAiraloState
) -> None:
    first = await provider.create_order(order("ord_a2", quantity=2))
    again = await provider.create_order(order("ord_a2", quantity=2))
    assert again == first
    assert state.calls["orders_async"] == 1  # accepted, not made yet: not submitted again
    assert len(state.async_requests) == 1
    state.complete_async()
    done = await provider.create_order(order("ord_a2", quantity=2))
    assert done.state is PurchaseState.COMPLETED
    assert len(done.esims) == 2
    # Once the order exists, any process finds it by our reference before buying.
    elsewhere = await restarted.create_order(order("ord_a2", quantity=2))
    assert elsewhere.provider_order_id == done.provider_order_id
    assert state.calls["orders_async"] == 1
    assert len(state.orders) == 1


async def test_concurrent_creates_for_one_reference_submit_once(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    # Slow answers make both calls look up before either has its 202, unless serialised.
    state.faults["orders_list"] = "slow"
    state.faults["orders_async"] = "slow"
    state.slow_seconds = 0.05
    first, second = await asyncio.gather(
        provider.create_order(order("ord_a3")), provider.create_order(order("ord_a3"))
    )
    assert first == second
    assert len(state.async_requests) == 1
    # Other references are not held up by it.
    del state.faults["orders_list"], state.faults["orders_async"]
    other = await provider.create_order(order("ord_a3b"))
    assert other.provider_order_id != first.provider_order_id


@pytest.mark.parametrize(
    "mode", ["commit_then_500", "500", "invalid_json", "schema", "redirect", "huge", "business:53"]
)
async def test_lost_answer_is_pending_and_never_resubmitted(
    provider: AiraloProvider, state: FakeAiraloState, mode: str
) -> None:
    state.faults["orders_async"] = mode
    with pytest.raises(TechnicalError) as caught:
        await provider.create_order(order("ord_a4"))
    assert caught.value.committed is None  # may have been queued
    del state.faults["orders_async"]
    # Not "no such order" (esimgate would refund what Airalo may still make): pending, no id.
    assert await provider.get_order("ord_a4") == Purchase("ord_a4", PurchaseState.PENDING)
    retried = await provider.create_order(order("ord_a4"))
    assert retried == Purchase("ord_a4", PurchaseState.PENDING)
    assert state.calls["orders_async"] == 1
    queued = len(state.async_requests)
    assert queued == (1 if mode == "commit_then_500" else 0)
    state.complete_async()
    found = await provider.get_order("ord_a4")
    assert found is not None
    assert found.state is (PurchaseState.COMPLETED if queued else PurchaseState.PENDING)


async def test_cancelled_submission_is_remembered(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    state.faults["orders_async"] = "slow"  # the request is queued after the sleep
    state.slow_seconds = 0.2
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):  # esimgate's provider timeout budget
            await provider.create_order(order("ord_a5"))
    assert await provider.get_order("ord_a5") == Purchase("ord_a5", PurchaseState.PENDING)


async def test_unsent_submission_is_not_remembered(
    state: FakeAiraloState, transport: httpx.ASGITransport, clock: FrozenClock
) -> None:
    class RefuseAsyncOrders(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v2/orders-async":
                raise httpx.ConnectError("refused", request=request)
            return await transport.handle_async_request(request)

    adapter = build(RefuseAsyncOrders(), clock)
    with pytest.raises(TechnicalError) as caught:
        await adapter.create_order(order("ord_a6"))
    assert caught.value.committed is False  # surely never sent: esimgate may fail over
    # (esimgate fails such an order at once and never asks; asked, the account cannot know.)
    assert await adapter.get_order("ord_a6") == Purchase("ord_a6", PurchaseState.PENDING)
    await adapter.aclose()


@pytest.mark.parametrize(
    ("package", "fault", "reason", "code"),
    [
        ("no-such-package", None, LogicalReason.INVALID_PACKAGE, "422"),
        ("change-7days-1gb-topup", None, LogicalReason.INVALID_PACKAGE, "422"),
        (PACKAGE, "business:34", LogicalReason.OUT_OF_STOCK, "34"),
        (PACKAGE, "business:11", LogicalReason.INSUFFICIENT_FUNDS, "11"),
        (PACKAGE, "business:14", LogicalReason.REJECTED, "14"),
    ],
)
async def test_refused_async_request_is_a_logical_error(
    provider: AiraloProvider,
    state: FakeAiraloState,
    package: str,
    fault: str | None,
    reason: LogicalReason,
    code: str,
) -> None:
    if fault:
        state.faults["orders_async"] = fault
    with pytest.raises(LogicalError) as caught:
        await provider.create_order(order("ord_r", package))
    assert caught.value.reason is reason
    assert caught.value.upstream_code == code
    assert state.async_requests == {}  # nothing queued: esimgate fails the order and refunds


async def test_no_webhook_url_needs_an_opt_in(
    state: FakeAiraloState, transport: httpx.ASGITransport, clock: FrozenClock
) -> None:
    adapter = build(transport, clock, webhook_url=None)
    with pytest.raises(LogicalError) as caught:
        await adapter.create_order(order("ord_o1"))
    assert caught.value.reason is LogicalReason.REJECTED
    assert NOT_OPTED_IN in caught.value.message
    assert state.async_requests == {}

    state.async_opt_in_url = "https://esimgate.example/opted-in"
    placed = await adapter.create_order(order("ord_o1"))
    assert placed.state is PurchaseState.PENDING
    assert b"webhook_url" not in state.last_bodies["/v2/orders-async"]
    [delivery] = state.complete_async()
    assert delivery.url == "https://esimgate.example/opted-in"
    await adapter.aclose()


async def test_synchronous_by_default_but_async_orders_are_still_found(
    state: FakeAiraloState, transport: httpx.ASGITransport, clock: FrozenClock
) -> None:
    sync = build(transport, clock, async_orders=False)
    assert Capability.ASYNC_PROVISIONING not in sync.capabilities
    bought = await sync.create_order(order("ord_s1"))
    assert bought.state is PurchaseState.COMPLETED
    assert "orders_async" not in state.calls
    # A numeric order id that the lookup does not find is still "no such order".
    assert await sync.get_order("ord_s2", "583999") is None
    # An order placed while async orders were on is pending, not absent, once they are off.
    asynchronous = build(transport, clock)
    assert Capability.ASYNC_PROVISIONING in asynchronous.capabilities
    placed = await asynchronous.create_order(order("ord_s3"))
    assert await sync.get_order("ord_s3", placed.provider_order_id) == placed
    await sync.aclose()
    await asynchronous.aclose()


# --- webhooks ---------------------------------------------------------------------------------

# Doc §5.3, the reconstructed success payload ("the regular order response plus request_id").
ASYNC_DONE = {
    "data": {
        "id": 583748,
        "code": "20250415-583748",
        "package_id": "uki-mobile-15days-2gb",
        "quantity": 1,
        "type": "sim",
        "description": "esimgate:ord_123",
        "price": 7.5,
        "net_price": 1.6,
        "currency": "USD",
        "sims": [
            {
                "iccid": "8944465400003573254",
                "lpa": "RSP-3088.IDEMIA.IO",
                "matching_id": "ABCDE-12345",
                "qrcode": "LPA:1$RSP-3088.IDEMIA.IO$ABCDE-12345",
            }
        ],
    },
    "meta": {"message": "success"},
    "request_id": "3NhR3gKmqCWK7IWppurpDX3Cg",
}
ASYNC_FAILED = {
    "request_id": "3NhR3gKmqCWK7IWppurpDX3Cg",
    "reason": "The requested eSIM package is invalid or it is currently out of stock.",
}


def test_async_order_delivery_names_our_reference_and_the_request(
    provider: AiraloProvider,
) -> None:
    body = json.dumps(ASYNC_DONE).encode()
    headers = {"content-type": "application/json", "airalo-signature": hmac512(body)}
    notice = provider.parse_webhook(headers, body, IP)
    assert notice.kind == "async_order_notification"
    assert notice.reference == "esimgate:ord_123"
    assert notice.provider_order_id == "3NhR3gKmqCWK7IWppurpDX3Cg"
    assert notice.iccid == "8944465400003573254"
    assert len(notice.event_id) == 64

    # The notes leave request_id's placement unverified: inside data works the same.
    inside = {"data": {**ASYNC_DONE["data"], "request_id": "3NhR3gKmqCWK7IWppurpDX3Cg"}}  # type: ignore[dict-item]
    body = json.dumps(inside).encode()
    moved = provider.parse_webhook({"airalo-signature": hmac512(body)}, body, IP)
    assert (moved.reference, moved.provider_order_id) == (
        notice.reference,
        "3NhR3gKmqCWK7IWppurpDX3Cg",
    )

    body = json.dumps(ASYNC_FAILED).encode()
    failed = provider.parse_webhook({"airalo-signature": hmac512(body)}, body, IP)
    assert failed.kind == "async_order_notification"
    assert failed.reference is None and failed.iccid is None
    assert failed.provider_order_id == "3NhR3gKmqCWK7IWppurpDX3Cg"

    # Signed with anything but our API secret, or altered: refused.
    body = json.dumps(ASYNC_DONE).encode()
    for bad in (hmac512(body, "someone-else"), hmac512(body + b" ")):
        with pytest.raises(LogicalError) as caught:
            provider.parse_webhook({"airalo-signature": bad}, body, IP)
        assert caught.value.reason is LogicalReason.REJECTED


@pytest.mark.parametrize(("mode", "in_data"), [(None, False), ("sdk_form", False), (None, True)])
async def test_the_fakes_delivery_is_accepted(
    provider: AiraloProvider, state: FakeAiraloState, mode: str | None, in_data: bool
) -> None:
    placed = await provider.create_order(order("ord/w1"))
    if mode:
        state.faults["async_webhook"] = mode
    state.async_request_id_in_data = in_data
    [delivery] = state.complete_async()
    if mode is None:
        # Independently: HMAC-SHA512 with the client secret over the exact bytes sent.
        assert delivery.headers["airalo-signature"] == hmac512(delivery.body)
        assert b"ord\\/w1" in delivery.body  # PHP-style "/" escaping
    notice = provider.parse_webhook(delivery.headers, delivery.body, IP)
    assert notice.reference == "ord/w1"
    assert notice.provider_order_id == placed.provider_order_id
    assert notice.iccid == state.orders[0]["sims"][0]["iccid"]


async def test_a_badly_signed_delivery_is_refused(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    await provider.create_order(order("ord_w2"))
    state.faults["async_webhook"] = "bad_signature"
    [delivery] = state.complete_async()
    with pytest.raises(LogicalError):
        provider.parse_webhook(delivery.headers, delivery.body, IP)


async def test_a_failed_async_order_fails_once_airalo_says_so(
    provider: AiraloProvider, restarted: AiraloProvider, state: FakeAiraloState
) -> None:
    placed = await provider.create_order(order("ord_f1", "test-out-of-stock-7days-1gb"))
    assert placed.state is PurchaseState.PENDING  # business failures arrive by webhook
    [delivery] = state.complete_async()
    assert delivery.payload == {
        "request_id": placed.provider_order_id,
        "reason": state.async_requests[str(placed.provider_order_id)].reason,
    }
    assert state.orders == []
    assert await provider.get_order("ord_f1") == placed  # not yet told
    notice = provider.parse_webhook(delivery.headers, delivery.body, IP)
    assert notice.provider_order_id == placed.provider_order_id
    failed = await provider.get_order("ord_f1", placed.provider_order_id)
    assert failed is not None
    assert failed.state is PurchaseState.FAILED
    assert failed.provider_order_id == placed.provider_order_id
    assert failed.failure_reason is not None and "out of stock" in failed.failure_reason
    # A retry does not buy either.
    assert await provider.create_order(order("ord_f1", "test-out-of-stock-7days-1gb")) == failed
    assert state.calls["orders_async"] == 1
    # A process that did not receive the delivery keeps it pending (esimgate's deadline).
    still = await restarted.get_order("ord_f1", placed.provider_order_id)
    assert still is not None and still.state is PurchaseState.PENDING


async def test_forced_failure_and_the_delivery_post(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    placed = await provider.create_order(order("ord_f2"))
    [delivery] = state.complete_async(placed.provider_order_id, failure="Unexpected error.")
    assert delivery.payload["reason"] == "Unexpected error."
    assert state.complete_async() == []  # nothing pending any more
    answers = iter([500, 204, 200])
    seen: list[bytes] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(next(answers))

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as http:
        assert await delivery.send(http) == [500, 204, 200]  # only a 200 counts
    assert seen == [delivery.body] * 3


# --- configuration ----------------------------------------------------------------------------


def test_from_config_options(clock: FrozenClock) -> None:
    def build_from(**options: str) -> AiraloProvider:
        credentials = {"client_id": "id", "client_secret": "secret", **options}
        config = AdapterConfig("airalo-main", None, credentials, clock, None)  # type: ignore[arg-type]
        return AiraloProvider.from_config(config)

    default = build_from()
    assert default._async_orders is False
    assert Capability.ASYNC_PROVISIONING not in default.capabilities
    on = build_from(async_orders="true", webhook_url=HOOK)
    assert (on._async_orders, on._webhook_url) == (True, HOOK)
    assert Capability.ASYNC_PROVISIONING in on.capabilities
    assert Capability.ASYNC_PROVISIONING not in AiraloProvider.capabilities  # per instance
    opted_in = build_from(async_orders="1")
    assert (opted_in._async_orders, opted_in._webhook_url) == (True, None)
    assert build_from(async_orders="false")._async_orders is False
    with pytest.raises(ValueError, match="async_orders"):
        build_from(async_orders="sometimes")
    with pytest.raises(ValueError, match="webhook_url"):
        build_from(async_orders="true", webhook_url="ftp://esimgate.example/hooks")
    with pytest.raises(ValueError, match="webhook_url"):
        build_from(async_orders="true", webhook_url="/api/v1/providers/airalo-main/webhooks")


# --- through esimgate: order → pending → webhook → completed ----------------------------------

ACCOUNT = "airalo-async"
ESIMGATE_HOOK = f"https://esimgate.example/api/v1/providers/{ACCOUNT}/webhooks"
ORDER = "/api/v1/business/esims/order"


async def _set_simulator(runtime: Runtime, enabled: bool) -> None:
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(ProviderAccount).where(ProviderAccount.name == SIMULATOR).values(enabled=enabled)
        )


async def _sync(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        await sync_catalogue(session, runtime.clock, runtime.providers)


@pytest.fixture
async def airalo_account(
    runtime: Runtime,
) -> AsyncIterator[tuple[FakeAiraloState, httpx.ASGITransport, int]]:
    """An Airalo account with async orders on, served by the fake; the simulator disabled.
    The session-wide catalogue and accounts are restored afterwards."""
    app, fake = make_app()
    transport = httpx.ASGITransport(app=app)
    async with runtime.sessions() as session:
        known = set(await session.scalars(select(CatalogPackage.id)))
    account_id: int | None = None
    try:
        async with runtime.sessions() as session, session.begin():
            credentials = {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "async_orders": "true",
                "webhook_url": ESIMGATE_HOOK,
            }
            account = await ProviderAccountRepository(session).add(
                ProviderAccount(
                    name=ACCOUNT,
                    kind="airalo",
                    base_url="http://airalo.fake/v2",
                    credentials_encrypted=runtime.box.encrypt(json.dumps(credentials)),
                    enabled=True,
                    created_at=runtime.clock.now(),
                )
            )
            account_id = account.id
        built = runtime.providers.adapter(account)  # from the stored options…
        assert isinstance(built, AiraloProvider)
        assert built._async_orders and built._webhook_url == ESIMGATE_HOOK
        await built.aclose()
        # …then the same adapter on the fake's transport.
        runtime.providers.override(
            account_id, build(transport, runtime.clock, webhook_url=ESIMGATE_HOOK)
        )
        await _set_simulator(runtime, False)
        await _sync(runtime)
        yield fake, transport, account_id
    finally:
        await _truncate(runtime)
        async with runtime.sessions() as session, session.begin():
            if account_id is not None:
                await session.execute(
                    delete(PackageOffer).where(PackageOffer.provider_account_id == account_id)
                )
                await session.execute(
                    delete(ProviderAccount).where(ProviderAccount.id == account_id)
                )
            await session.execute(delete(CatalogPackage).where(CatalogPackage.id.not_in(known)))
        await _set_simulator(runtime, True)
        await _sync(runtime)


async def test_esimgate_keeps_an_async_order_pending_until_the_webhook(
    airalo_account: tuple[FakeAiraloState, httpx.ASGITransport, int],
    api: SignedClient,
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
) -> None:
    fake, transport, account_id = airalo_account
    async with runtime.sessions() as session:
        code = await session.scalar(
            select(CatalogPackage.code)
            .join(PackageOffer, PackageOffer.package_id == CatalogPackage.id)
            .where(
                PackageOffer.provider_account_id == account_id,
                PackageOffer.provider_code == PACKAGE,
            )
        )
    assert code is not None
    placed = await api.post(ORDER, {"packageCode": code})
    assert placed.status_code == 200, placed.text
    body = placed.json()
    assert body["status"] == "pending_details", body
    reference = body["orderReference"]
    [accepted] = fake.async_requests.values()
    assert accepted.description == reference
    async with runtime.sessions() as session:
        stored = await session.scalar(select(Order).where(Order.reference == reference))
        assert stored is not None
        assert stored.provider_order_id == accepted.request_id

    # A restart: a fresh adapter knows only what esimgate stored. Polling must not refund.
    runtime.providers.override(account_id, build(transport, clock, webhook_url=ESIMGATE_HOOK))
    for _ in range(3):
        clock.advance(seconds=200)
        await Worker(runtime).run_due()
    status = (await api.get(f"{ORDER}?orderReference={reference}")).json()["order"]
    assert status["status"] == "pending_details", status
    assert fake.async_requests[accepted.request_id].status == "pending"

    # Airalo makes the order and POSTs the result to the URL we gave it.
    [delivery] = fake.complete_async()
    assert delivery.url == ESIMGATE_HOOK
    received = await client.post(
        urlsplit(delivery.url).path, content=delivery.body, headers=delivery.headers
    )
    assert received.status_code == 200, received.text
    assert received.json()["duplicate"] is False
    clock.advance(seconds=11)
    await Worker(runtime).run_due()
    status = (await api.get(f"{ORDER}?orderReference={reference}")).json()["order"]
    assert status["status"] == "completed", status
    assert [e["iccid"] for e in status["esims"]] == [fake.orders[0]["sims"][0]["iccid"]]
    assert len(fake.orders) == 1
    async with runtime.sessions() as session:
        stored = await session.scalar(select(Order).where(Order.reference == reference))
        assert stored is not None
        assert stored.provider_order_id == str(fake.orders[0]["id"])
