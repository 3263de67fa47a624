"""Airalo adapter against the fake Airalo upstream (tests/fakes/airalo.py) over ASGITransport."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from esimgate.clock import FrozenClock
from esimgate.esims.models import EsimStatus
from esimgate.esims.status import normalise
from esimgate.esims.units import GIB, MIB
from esimgate.providers.airalo.adapter import AiraloProvider, verify_webhook
from esimgate.providers.airalo.client import (
    PRODUCTION_URL,
    AiraloClient,
    canonical_payload,
    sign_payload,
)
from esimgate.providers.base import (
    Capability,
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
    OrderRequest,
    PackageKind,
    Provider,
    PurchaseState,
    TechnicalError,
    TopUpRequest,
)
from esimgate.providers.registry import AdapterConfig
from tests.fakes.airalo import CLIENT_ID, CLIENT_SECRET, FakeAiraloState, make_app

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

# Doc §2.2 test vectors (computed by the doc authors with the SDK algorithm).
ORDER_PAYLOAD = {
    "package_id": "kallur-digital-7days-1gb",
    "quantity": 1,
    "type": "sim",
    "description": "esimgate order/123",
}
ORDER_SIGNED = (
    '{"package_id":"kallur-digital-7days-1gb","quantity":1,"type":"sim",'
    '"description":"esimgate order\\/123"}'
)
ORDER_SIGNATURE = (
    "ebcce6c332ccdd4e0c67894b0cb06b0d9f8b1c7c1f6ba7eec50483e75667737f"
    "4799fca79520076566f5c155c41c150a72d1b62d7cf0a28d401138bc73922964"
)
TOKEN_PAYLOAD = {
    "client_id": "client-id-example",
    "client_secret": "client-secret-example",
    "grant_type": "client_credentials",
}
TOKEN_SIGNATURE = (
    "4b37989a042d3d8fd8203215b8296d93c75d929a585e2074f1b0f0ebf9b8b0e6"
    "b755b09b8ed9a4d92354265392c424802e23a59d715a2eed501fdb187092813a"
)


def _hmac512(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha512).hexdigest()


def build(
    transport: httpx.AsyncBaseTransport, clock: FrozenClock, secret: str = CLIENT_SECRET
) -> AiraloProvider:
    http = httpx.AsyncClient(transport=transport, base_url=PRODUCTION_URL, follow_redirects=False)
    return AiraloProvider(AiraloClient(http, CLIENT_ID, secret, clock=clock), clock=clock)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def state() -> FakeAiraloState:
    return FakeAiraloState()


@pytest.fixture
async def provider(state: FakeAiraloState, clock: FrozenClock) -> AsyncIterator[AiraloProvider]:
    app, _ = make_app(state)
    adapter = build(httpx.ASGITransport(app=app), clock)
    yield adapter
    await adapter.aclose()


async def _buy(provider: AiraloProvider, reference: str = "ord_1") -> str:
    purchase = await provider.create_order(OrderRequest(reference, "change-7days-1gb", 1))
    return purchase.esims[0].iccid


# --- signing and auth -------------------------------------------------------------------------


def test_signature_vectors_from_the_doc() -> None:
    # Independent computation of the doc's recipe, then our implementation.
    assert _hmac512("client-secret-example", ORDER_SIGNED) == ORDER_SIGNATURE
    assert canonical_payload(ORDER_PAYLOAD) == ORDER_SIGNED
    assert sign_payload(ORDER_PAYLOAD, "client-secret-example") == ORDER_SIGNATURE
    assert sign_payload(TOKEN_PAYLOAD, "client-secret-example") == TOKEN_SIGNATURE
    # A payload given as text is re-serialised canonically first (SDK behaviour).
    spaced = '{"package_id": "kallur-digital-7days-1gb", "quantity": 1, "type": "sim", '
    spaced += '"description": "esimgate order/123"}'
    assert sign_payload(spaced, "client-secret-example") == ORDER_SIGNATURE


async def test_token_is_cached_for_its_lifetime(
    provider: AiraloProvider, state: FakeAiraloState, clock: FrozenClock
) -> None:
    for _ in range(5):
        await provider.list_packages()
    assert state.calls["token"] == 1  # the token endpoint allows 3/min
    clock.advance(hours=23)
    await provider.list_packages()
    assert state.calls["token"] == 1
    clock.advance(hours=1)  # refreshed at least daily even though expires_in is ~1 year
    await provider.list_packages()
    assert state.calls["token"] == 2


async def test_rejected_token_is_renewed_once(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    await provider.list_packages()
    state.faults["packages"] = "401"  # the fake forgets every token and answers 401 once
    assert len(await provider.list_packages()) == 4
    assert state.calls["token"] == 2


async def test_bad_credentials_are_a_technical_error(
    state: FakeAiraloState, clock: FrozenClock
) -> None:
    app, _ = make_app(state)
    adapter = build(httpx.ASGITransport(app=app), clock, secret="wrong")
    with pytest.raises(TechnicalError) as caught:
        await adapter.create_order(OrderRequest("ord_x", "change-7days-1gb", 1))
    assert caught.value.committed is False  # the order request was never sent
    assert state.orders == []
    await adapter.aclose()


# --- (a) catalogue ----------------------------------------------------------------------------


async def test_catalogue(provider: AiraloProvider, state: FakeAiraloState) -> None:
    packages = {p.provider_code: p for p in await provider.list_packages()}
    assert state.calls["packages"] == 2  # paged; page 2 comes as an index-keyed object
    assert set(packages) == {
        "change-7days-1gb",
        "change-30days-unlimited",
        "change-7days-1gb-topup",
        "eurolink-15days-3gb",
    }
    base = packages["change-7days-1gb"]
    assert base.cost == Money(11_000, "USD")
    assert base.data_bytes == GIB
    assert base.validity_days == 7
    assert base.kind is PackageKind.LOCAL
    assert base.region == "United States"
    assert base.rechargeable is True
    assert not base.is_topup
    [us] = base.coverage
    assert (us.country_code, us.country_name) == ("US", "United States")
    assert [(n.operator, n.radio) for n in us.networks] == [
        ("T-Mobile", ("5G",)),
        ("Verizon", ("5G",)),
    ]

    assert packages["change-30days-unlimited"].data_bytes is None
    assert packages["change-30days-unlimited"].cost == Money(172_500, "USD")

    topup = packages["change-7days-1gb-topup"]
    assert topup.is_topup
    assert topup.cost == Money(10_505, "USD")  # 1.0505 exactly
    assert topup.data_bytes == 1536 * MIB
    assert topup.topup_for == frozenset({"change-7days-1gb", "change-30days-unlimited"})

    region = packages["eurolink-15days-3gb"]
    assert region.kind is PackageKind.REGIONAL
    assert region.rechargeable is False  # sent as the string "false"
    assert [(c.country_code, c.country_name) for c in region.coverage] == [
        ("FR", "France"),
        ("DE", "Germany"),
    ]
    assert region.data_bytes == 3 * GIB
    assert region.cost == Money(63_000, "USD")


# --- (b) orders -------------------------------------------------------------------------------


async def test_order_is_synchronous_and_tagged_with_our_reference(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    purchase = await provider.create_order(OrderRequest("esimgate/ord_1", "change-7days-1gb", 2))
    assert purchase.state is PurchaseState.COMPLETED
    assert purchase.reference == "esimgate/ord_1"
    assert purchase.unit_cost == Money(11_000, "USD")
    assert len(purchase.esims) == 2
    esim = purchase.esims[0]
    assert esim.iccid in state.sims
    assert esim.provider_esim_id == esim.iccid
    assert esim.smdp_address == "lpa.airalo.com"
    assert esim.lpa == f"LPA:1$lpa.airalo.com${esim.matching_id}"
    [order] = state.orders
    assert order["description"] == "esimgate/ord_1"
    assert purchase.provider_order_id == str(order["id"])
    # The body sent is the signed canonical string itself, and the fake verified the signature.
    assert state.last_bodies["/v2/orders"] == (
        b'{"package_id":"change-7days-1gb","quantity":2,"type":"sim",'
        b'"description":"esimgate\\/ord_1"}'
    )
    assert state.signatures_checked == 1


async def test_retrying_an_order_does_not_buy_twice(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    first = await provider.create_order(OrderRequest("ord_1", "change-7days-1gb", 1))
    again = await provider.create_order(OrderRequest("ord_1", "change-7days-1gb", 1))
    assert again.provider_order_id == first.provider_order_id
    assert again.esims == first.esims
    assert len(state.orders) == 1


async def test_ambiguous_failure_then_reconcile(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    state.faults["orders"] = "commit_then_500"
    with pytest.raises(TechnicalError) as caught:
        await provider.create_order(OrderRequest("ord_amb", "change-7days-1gb", 1))
    assert caught.value.committed is None
    del state.faults["orders"]
    found = await provider.get_order("ord_amb")
    assert found is not None and found.state is PurchaseState.COMPLETED
    retried = await provider.create_order(OrderRequest("ord_amb", "change-7days-1gb", 1))
    assert retried.provider_order_id == found.provider_order_id
    assert len(state.orders) == 1


# --- (c) order lookup -------------------------------------------------------------------------


async def test_get_order_by_our_reference(provider: AiraloProvider) -> None:
    placed = await provider.create_order(OrderRequest("ord-10", "change-7days-1gb", 1))
    found = await provider.get_order("ord-10")
    assert found is not None
    assert found.state is PurchaseState.COMPLETED
    assert found.provider_order_id == placed.provider_order_id
    assert found.esims == placed.esims
    assert found.unit_cost == Money(11_000, "USD")  # list prices may be strings upstream
    # The upstream filter is a LIKE match: "ord-1" matches "ord-10" there, but not here.
    assert await provider.get_order("ord-1") is None
    assert await provider.get_order("never-sent") is None


# --- (d) usage --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "remaining", "total", "expired_at", "used", "total_bytes", "api"),
    [
        ("NOT_ACTIVE", 1024, 1024, None, 0, GIB, EsimStatus.NEW),
        (
            "ACTIVE",
            767,
            2048,
            "2026-12-01 00:00:00",
            (2048 - 767) * MIB,
            2 * GIB,
            EsimStatus.ACTIVE,
        ),
        ("FINISHED", 0, 1024, "2026-12-01 00:00:00", GIB, GIB, EsimStatus.DEPLETED),
        ("EXPIRED", 100, 1024, "2026-11-01 00:00:00", 924 * MIB, GIB, EsimStatus.EXPIRED),
        ("ACTIVE", Decimal("511.5"), 1024, None, 512 * MIB + MIB // 2, GIB, EsimStatus.ACTIVE),
    ],
)
async def test_usage(
    provider: AiraloProvider,
    state: FakeAiraloState,
    status: str,
    remaining: Any,
    total: int,
    expired_at: str | None,
    used: int,
    total_bytes: int,
    api: EsimStatus,
) -> None:
    iccid = await _buy(provider)
    state.set_usage(
        iccid, remaining_mb=remaining, total_mb=total, status=status, expired_at=expired_at
    )
    ref = EsimRef(iccid=iccid, provider_esim_id=iccid)
    [report] = await provider.query_usage([ref])
    assert report.esim == ref
    assert report.used_bytes == used
    assert report.total_bytes == total_bytes
    assert dict(report.raw_status) == {"status": status}
    assert report.observed_at == NOW
    if expired_at:
        assert report.expires_at == datetime.fromisoformat(expired_at).replace(tzinfo=UTC)
    result = normalise(
        "airalo",
        report.raw_status,
        used_bytes=report.used_bytes,
        total_bytes=report.total_bytes,
        expires_at=report.expires_at,
        now=NOW,
    )
    assert result.api_status is api


async def test_usage_unlimited_recycled_and_unknown(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    iccid = await _buy(provider)
    ref = EsimRef(iccid=iccid, provider_esim_id=iccid)
    # Unlimited: 0/0 must not read as "used up" (the sandbox even says is_unlimited false).
    state.set_usage(iccid, remaining_mb=0, total_mb=0, status="NOT_ACTIVE", is_unlimited=False)
    [report] = await provider.query_usage([ref])
    assert (report.used_bytes, report.total_bytes) == (0, None)
    norm = normalise("airalo", report.raw_status, used_bytes=0, total_bytes=None,
                     expires_at=None, now=NOW)  # fmt: skip
    assert norm.api_status is EsimStatus.NEW

    state.set_usage(iccid, remaining_mb=0, total_mb=0, status="RECYCLED")
    [report] = await provider.query_usage([ref])
    assert dict(report.raw_status) == {"status": "RECYCLED"}
    norm = normalise("airalo", report.raw_status, used_bytes=0, total_bytes=None,
                     expires_at=None, now=NOW)  # fmt: skip
    assert norm.api_status is EsimStatus.DELETED

    unknown = EsimRef(iccid="8900000000000000000", provider_esim_id="8900000000000000000")
    assert await provider.query_usage([unknown]) == []
    with pytest.raises(LogicalError):
        await provider.query_usage([ref, unknown])  # max_usage_batch is 1


# --- (e) top-up -------------------------------------------------------------------------------


async def test_top_up(provider: AiraloProvider, state: FakeAiraloState) -> None:
    iccid = await _buy(provider)
    ref = EsimRef(iccid=iccid, provider_esim_id=iccid)
    request = TopUpRequest("top_1", ref, "change-7days-1gb-topup")
    result = await provider.top_up(request)
    assert result.state is PurchaseState.COMPLETED
    assert result.reference == "top_1"
    assert result.unit_cost == Money(10_505, "USD")
    assert state.sims[iccid].topups == ["change-7days-1gb-topup"]
    assert state.orders[-1]["description"] == "top_1"
    # A retry with the same reference finds the earlier top-up instead of buying again.
    again = await provider.top_up(request)
    assert again.state is PurchaseState.COMPLETED
    assert state.sims[iccid].topups == ["change-7days-1gb-topup"]
    # A top-up order is not an eSIM order.
    assert await provider.get_order("top_1") is None

    [report] = await provider.query_usage([ref])
    assert report.total_bytes == GIB + 1536 * MIB


async def test_top_up_refusals(provider: AiraloProvider, state: FakeAiraloState) -> None:
    iccid = await _buy(provider)
    ref = EsimRef(iccid=iccid, provider_esim_id=iccid)
    with pytest.raises(LogicalError) as caught:
        await provider.top_up(TopUpRequest("top_bad", ref, "change-7days-1gb"))
    assert caught.value.reason is LogicalReason.INVALID_PACKAGE
    state.sims[iccid].status = "RECYCLED"
    with pytest.raises(LogicalError) as caught:
        await provider.top_up(TopUpRequest("top_rec", ref, "change-7days-1gb-topup"))
    assert caught.value.reason is LogicalReason.NOT_ALLOWED
    assert caught.value.upstream_code == "73"
    with pytest.raises(LogicalError):
        await provider.top_up(TopUpRequest("top_q", ref, "change-7days-1gb-topup", quantity=2))


# --- (f) cancel -------------------------------------------------------------------------------


async def test_cancel_is_not_offered(provider: AiraloProvider) -> None:
    assert Capability.CANCEL not in provider.capabilities
    with pytest.raises(LogicalError) as caught:
        await provider.cancel(EsimRef(iccid="1", provider_esim_id="1"))
    assert caught.value.reason is LogicalReason.NOT_ALLOWED


# --- (g) faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode", ["500", "invalid_json", "schema", "redirect", "huge", "business:53"]
)
async def test_order_faults_are_ambiguous_technical_errors(
    provider: AiraloProvider, state: FakeAiraloState, mode: str
) -> None:
    state.faults["orders"] = mode
    with pytest.raises(TechnicalError) as caught:
        await provider.create_order(OrderRequest("ord_f", "change-7days-1gb", 1))
    assert caught.value.committed is None
    assert caught.value.provider == "airalo"


async def test_failed_lookup_before_buying_is_not_committed(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    state.faults["orders_list"] = "500"
    with pytest.raises(TechnicalError) as caught:
        await provider.create_order(OrderRequest("ord_l", "change-7days-1gb", 1))
    assert caught.value.committed is False
    assert state.orders == []
    assert "orders" not in state.calls  # the POST was never sent


@pytest.mark.parametrize("mode", ["500", "invalid_json", "redirect"])
async def test_read_faults(provider: AiraloProvider, state: FakeAiraloState, mode: str) -> None:
    state.faults["packages"] = mode
    with pytest.raises(TechnicalError):
        await provider.list_packages()


async def test_rate_limited(provider: AiraloProvider, state: FakeAiraloState) -> None:
    state.faults["packages"] = "429"
    with pytest.raises(TechnicalError) as caught:
        await provider.list_packages()
    assert caught.value.retry_after == 17.0
    state.retry_after = "Sun, 22 Nov 2026 12:00:30 GMT"  # the HTTP-date form
    with pytest.raises(TechnicalError) as caught:
        await provider.list_packages()
    assert caught.value.retry_after == 30.0


@pytest.mark.parametrize(
    ("package", "reason", "code"),
    [
        ("test-out-of-stock-7days-1gb", LogicalReason.OUT_OF_STOCK, "34"),
        ("test-not-enough-7days-1gb", LogicalReason.OUT_OF_STOCK, "33"),
        ("test-insufficient-balance-7days-1gb", LogicalReason.INSUFFICIENT_FUNDS, "11"),
        ("test-maintenance-mode-7days-1gb", LogicalReason.OUT_OF_STOCK, "13"),
        ("no-such-package", LogicalReason.INVALID_PACKAGE, "422"),
    ],
)
async def test_business_errors(
    provider: AiraloProvider,
    state: FakeAiraloState,
    package: str,
    reason: LogicalReason,
    code: str,
) -> None:
    with pytest.raises(LogicalError) as caught:
        await provider.create_order(OrderRequest("ord_b", package, 1))
    assert caught.value.reason is reason
    assert caught.value.upstream_code == code
    assert state.orders == []


async def test_ip_not_allowed_is_a_refusal(
    provider: AiraloProvider, state: FakeAiraloState
) -> None:
    state.faults["orders"] = "business:89"
    with pytest.raises(LogicalError) as caught:
        await provider.create_order(OrderRequest("ord_ip", "change-7days-1gb", 1))
    assert caught.value.upstream_code == "89"


async def test_connect_error_is_not_committed(clock: FrozenClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    adapter = build(httpx.MockTransport(refuse), clock)
    with pytest.raises(TechnicalError) as caught:
        await adapter.create_order(OrderRequest("ord_c", "change-7days-1gb", 1))
    assert caught.value.committed is False
    await adapter.aclose()


async def test_connect_error_on_the_order_call_itself(
    state: FakeAiraloState, clock: FrozenClock
) -> None:
    app, _ = make_app(state)
    inner = httpx.ASGITransport(app=app)

    class RefuseOrders(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path == "/v2/orders":
                raise httpx.ConnectError("refused", request=request)
            return await inner.handle_async_request(request)

    adapter = build(RefuseOrders(), clock)
    with pytest.raises(TechnicalError) as caught:
        await adapter.create_order(OrderRequest("ord_c2", "change-7days-1gb", 1))
    assert caught.value.committed is False
    await adapter.aclose()


async def test_read_timeout_is_ambiguous(state: FakeAiraloState, clock: FrozenClock) -> None:
    app, _ = make_app(state)
    inner = httpx.ASGITransport(app=app)

    class TimeOutOrders(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path == "/v2/orders":
                await inner.handle_async_request(request)  # the upstream did the work…
                raise httpx.ReadTimeout("no answer", request=request)  # …we never heard
            return await inner.handle_async_request(request)

    adapter = build(TimeOutOrders(), clock)
    with pytest.raises(TechnicalError) as caught:
        await adapter.create_order(OrderRequest("ord_t", "change-7days-1gb", 1))
    assert caught.value.committed is None
    found = await adapter.get_order("ord_t")
    assert found is not None and found.state is PurchaseState.COMPLETED
    await adapter.aclose()


# --- construction and webhooks ----------------------------------------------------------------


async def test_from_config(clock: FrozenClock) -> None:
    config = AdapterConfig(
        name="airalo-main",
        base_url=None,
        credentials={"client_id": "id", "client_secret": "secret"},
        clock=clock,
        sessions=None,  # type: ignore[arg-type]  # stateless adapter: never used
    )
    adapter = AiraloProvider.from_config(config)
    assert isinstance(adapter, Provider)
    assert adapter.kind == "airalo"
    assert adapter.max_usage_batch == 1
    assert adapter.requests_per_second == 5.0
    http = adapter._client._http
    assert str(http.base_url) == PRODUCTION_URL
    assert http.follow_redirects is False
    assert http.timeout == httpx.Timeout(30, connect=5)
    await adapter.aclose()

    custom = AiraloProvider.from_config(
        AdapterConfig(
            "sandbox",
            "https://sandbox-partners-api.airalo.com/v2",
            {"client_id": "id", "client_secret": "secret"},
            clock,
            None,  # type: ignore[arg-type]
        )
    )
    assert str(custom._client._http.base_url) == "https://sandbox-partners-api.airalo.com/v2/"
    await custom.aclose()
    with pytest.raises(ValueError, match="client_secret"):
        AiraloProvider.from_config(AdapterConfig("x", None, {"client_id": "id"}, clock, None))  # type: ignore[arg-type]


WEBHOOK_SECRET = "client-secret-example"
# Vectors computed by us with HMAC-SHA512 (hex) keyed with the API secret.
LOW_DATA_BODY = (
    b'{"level": "3days", "package_name": "bonbon-7gb-10days", '
    b'"remaining_percentage": 43, "iccid": "87123123456889019"}'
)
LOW_DATA_SIGNATURE = (
    "5f5b9033d8e42d1a1a9ad7238be7581da37f31bacddc06e024c874e08f0911f9"
    "a215b16ab68673c3b11f50485dcbd811ac6737b0261f164744a7a0230b0e545c"
)
CREDIT_BODY = (
    b'{"message": "Surpassed 80% of the credit limit balance", "remaining": 225.35, '
    b'"url": "https://example.com/x"}'
)
# Signed over the SDK canonical form: compact, "/" escaped.
CREDIT_SIGNATURE = (
    "2f44cc05611298877da68c338895b80f090db4878a34ed7201a1436f495925b7"
    "f13516a8475fb3ef6cda444c69da2baee4917555f7fa43fd632eb25ca2ff51a3"
)


def test_webhook_signature() -> None:
    assert _hmac512(WEBHOOK_SECRET, LOW_DATA_BODY.decode()) == LOW_DATA_SIGNATURE
    assert verify_webhook({"airalo-signature": LOW_DATA_SIGNATURE}, LOW_DATA_BODY, WEBHOOK_SECRET)
    assert verify_webhook(
        {"Airalo-Signature": LOW_DATA_SIGNATURE.upper()}, LOW_DATA_BODY, WEBHOOK_SECRET
    )
    assert verify_webhook({"airalo-signature": CREDIT_SIGNATURE}, CREDIT_BODY, WEBHOOK_SECRET)
    assert not verify_webhook({"airalo-signature": LOW_DATA_SIGNATURE}, CREDIT_BODY, WEBHOOK_SECRET)
    assert not verify_webhook({"airalo-signature": LOW_DATA_SIGNATURE}, LOW_DATA_BODY, "other")
    assert not verify_webhook({}, LOW_DATA_BODY, WEBHOOK_SECRET)
    assert not verify_webhook({"airalo-signature": "00"}, b"not json", WEBHOOK_SECRET)
