"""eSIM Access adapter against the fake upstream (tests/fakes/esimaccess.py) over ASGI."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from esimgate.clock import FrozenClock
from esimgate.esims.models import EsimStatus
from esimgate.esims.status import normalise
from esimgate.providers.base import (
    Capability,
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
    OrderRequest,
    PackageKind,
    Provider,
    Purchase,
    PurchaseState,
    TechnicalError,
    TopUpRequest,
)
from esimgate.providers.esimaccess import wire
from esimgate.providers.esimaccess.adapter import BASE_URL, EsimAccessProvider, is_webhook_source
from esimgate.providers.esimaccess.client import EsimAccessClient, sign
from esimgate.providers.registry import AdapterConfig
from tests.fakes.esimaccess import GIB, FakeState, make_app

BASE = "https://api.esimaccess.test/api/v1/open"
ACCESS, SECRET = "test-access-code", "test-secret-key"
START = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def state(clock: FrozenClock) -> FakeState:
    return FakeState(access_code=ACCESS, secret_key=SECRET, require_signature=True, now=clock.now)


@pytest.fixture
async def provider(state: FakeState, clock: FrozenClock) -> AsyncIterator[EsimAccessProvider]:
    app, _ = make_app(state)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    adapter = EsimAccessProvider(EsimAccessClient(http, ACCESS, SECRET, clock=clock), clock=clock)
    yield adapter
    await adapter.aclose()


def _adapter_over(transport: httpx.AsyncBaseTransport, clock: FrozenClock) -> EsimAccessProvider:
    http = httpx.AsyncClient(transport=transport, base_url=BASE)
    return EsimAccessProvider(EsimAccessClient(http, ACCESS, SECRET, clock=clock), clock=clock)


async def _completed(provider: EsimAccessProvider, reference: str, quantity: int = 1) -> Purchase:
    first = await provider.create_order(OrderRequest(reference, "CKH002", quantity))
    purchase = (
        await provider.get_order(reference) if first.state is PurchaseState.PENDING else first
    )
    assert purchase is not None and purchase.state is PurchaseState.COMPLETED
    return purchase


# --- signing ---------------------------------------------------------------------------------


def test_signature_matches_the_documented_vector() -> None:
    expected = "7eb765e27df5373dea2dbc8c41a7d9557743e46c8054750f3d851b3fd01d0835"
    body = '{"imsi":"326543826"}'
    args = ("1628670421", "4ce9d9cdac9e4e17b3a2c66c358c1ce2", "11111", body)
    assert sign("1111", *args) == expected
    # Independently: HMAC-SHA256 over the documented concatenation.
    sign_data = "16286704214ce9d9cdac9e4e17b3a2c66c358c1ce211111" + body
    independent = hmac.new(b"1111", sign_data.encode(), hashlib.sha256).hexdigest()
    assert independent == expected


async def test_requests_carry_signed_headers(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    await provider.list_packages()
    path, headers, body = state.requests[0]
    assert path == "/package/list"
    assert headers["rt-accesscode"] == ACCESS
    assert headers["rt-timestamp"] == str(int(START.timestamp() * 1000))  # milliseconds
    message = headers["rt-timestamp"] + headers["rt-requestid"] + ACCESS + body.decode()
    digest = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert headers["rt-signature"] == digest
    assert len({h["rt-requestid"] for _, h, _ in state.requests}) == len(state.requests)


async def test_wrong_secret_is_a_technical_error_not_committed(
    state: FakeState, clock: FrozenClock
) -> None:
    app, _ = make_app(state)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    adapter = EsimAccessProvider(EsimAccessClient(http, ACCESS, "wrong", clock=clock))
    with pytest.raises(TechnicalError) as caught:
        await adapter.create_order(OrderRequest("ref-bad-sig", "CKH002", 1))
    assert caught.value.committed is False
    assert state.orders == {}
    await adapter.aclose()


# --- (a) catalogue ---------------------------------------------------------------------------


async def test_catalogue(provider: EsimAccessProvider) -> None:
    assert isinstance(provider, Provider)
    packages = {p.provider_code: p for p in await provider.list_packages()}
    spain = packages["CKH002"]
    assert not spain.is_topup and spain.rechargeable and spain.kind is PackageKind.LOCAL
    assert spain.cost == Money(18000, "USD")  # 1.80 USD, exactly
    assert spain.data_bytes == 3 * GIB and spain.validity_days == 30
    assert spain.region == "Spain"
    assert [(c.country_code, c.country_name) for c in spain.coverage] == [("ES", "Spain")]
    assert spain.coverage[0].networks[0].operator == "Vodafone"
    europe = packages["PEU042"]
    assert europe.cost == Money(123456, "USD")  # sent as a string
    assert europe.kind is PackageKind.REGIONAL and europe.daily_data
    assert europe.data_bytes == GIB
    assert {c.country_code for c in europe.coverage} == {"FR", "DE", "IT"}
    topup = packages["TOPUP_CKH002_1"]
    assert topup.is_topup and topup.cost == Money(9999, "USD") and topup.data_bytes == GIB


async def test_malformed_package_is_skipped(provider: EsimAccessProvider, state: FakeState) -> None:
    state.packages.append({"packageCode": "BAD", "type": "BASE", "price": "1.5"})
    codes = {p.provider_code for p in await provider.list_packages()}
    assert "BAD" not in codes and "CKH002" in codes


# --- (b) ordering, (c) lookup ----------------------------------------------------------------


async def test_async_order_pending_then_completed(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    state.allocation_polls = 1
    purchase = await provider.create_order(
        OrderRequest("ref-async-1", "CKH002", 2, expected_unit_cost=Money(18000, "USD"))
    )
    assert purchase.state is PurchaseState.PENDING
    assert purchase.provider_order_id is not None and purchase.esims == ()
    sent = state.calls("/esim/order")[0]
    assert sent["transactionId"] == "ref-async-1"
    assert sent["packageInfoList"] == [{"packageCode": "CKH002", "count": 2, "price": 18000}]
    assert sent["amount"] == 36000
    done = await provider.get_order("ref-async-1")
    assert done is not None and done.state is PurchaseState.COMPLETED
    assert done.provider_order_id == purchase.provider_order_id
    assert len(done.esims) == 2
    esim = done.esims[0]
    assert esim.lpa.startswith("LPA:1$rsp-eu.redteamobile.com$")
    assert esim.smdp_address == "rsp-eu.redteamobile.com" and esim.matching_id
    assert esim.provider_esim_id in state.esims
    assert done.unit_cost == Money(18000, "USD")
    assert state.balance == 10_000_000 - 36000


async def test_sync_allocation_completes_at_once(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    state.allocation_polls = 0
    purchase = await provider.create_order(OrderRequest("ref-sync", "CKH002", 1))
    assert purchase.state is PurchaseState.COMPLETED and len(purchase.esims) == 1


async def test_retry_with_same_reference_does_not_buy_twice(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    first = await provider.create_order(OrderRequest("ref-twice", "CKH002", 1))
    second = await provider.create_order(OrderRequest("ref-twice", "CKH002", 1))
    assert first.provider_order_id == second.provider_order_id
    assert len(state.orders) == 1 and state.balance == 10_000_000 - 18000


async def test_get_order_unknown_is_none(provider: EsimAccessProvider) -> None:
    assert await provider.get_order("never-placed") is None


async def test_get_order_without_memory_scans_by_transaction_id(
    provider: EsimAccessProvider, state: FakeState, clock: FrozenClock
) -> None:
    state.allocation_polls = 0
    placed = await provider.create_order(OrderRequest("ref-other-process", "CKH002", 1))
    await provider.create_order(OrderRequest("ref-noise", "CKH002", 1))
    app, _ = make_app(state)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    fresh = EsimAccessProvider(EsimAccessClient(http, ACCESS, SECRET, clock=clock), clock=clock)
    found = await fresh.get_order("ref-other-process")
    assert found is not None and found.state is PurchaseState.COMPLETED
    assert found.provider_order_id == placed.provider_order_id
    assert found.esims == placed.esims
    await fresh.aclose()


async def test_get_order_after_a_restart_uses_the_stored_order_no(
    provider: EsimAccessProvider, state: FakeState, clock: FrozenClock
) -> None:
    """Still allocating (so no eSIM carries the transactionId yet) and placed by another
    process: the scan cannot find it, the stored orderNo can."""
    placed = await provider.create_order(OrderRequest("ref-restart", "CKH002", 1))
    assert placed.state is PurchaseState.PENDING and placed.provider_order_id
    app, _ = make_app(state)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    fresh = EsimAccessProvider(EsimAccessClient(http, ACCESS, SECRET, clock=clock), clock=clock)
    try:
        assert await fresh.get_order("ref-restart") is None  # nothing visible to a scan yet
        for order in state.orders.values():
            state.allocate(order.order_no)
        found = await fresh.get_order("ref-restart", placed.provider_order_id)
        assert found is not None and found.state is PurchaseState.COMPLETED
        assert found.provider_order_id == placed.provider_order_id and len(found.esims) == 1
    finally:
        await fresh.aclose()


async def test_create_follow_up_failure_still_reports_pending(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    state.fail("/esim/query", "http_500", times=1)
    purchase = await provider.create_order(OrderRequest("ref-follow-up", "CKH002", 1))
    assert purchase.state is PurchaseState.PENDING and purchase.provider_order_id


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("200007", LogicalReason.INSUFFICIENT_FUNDS),
        ("200011", LogicalReason.OUT_OF_STOCK),
        ("200005", LogicalReason.PRICE_CHANGED),
        ("310241", LogicalReason.INVALID_PACKAGE),
        ("200002", LogicalReason.NOT_ALLOWED),
    ],
)
async def test_business_errors_are_logical(
    provider: EsimAccessProvider, state: FakeState, code: str, reason: LogicalReason
) -> None:
    state.fail("/esim/order", "business", code=code)
    with pytest.raises(LogicalError) as caught:
        await provider.create_order(OrderRequest("ref-refused", "CKH002", 1))
    assert caught.value.reason is reason and caught.value.upstream_code == code


async def test_real_refusals(provider: EsimAccessProvider, state: FakeState) -> None:
    with pytest.raises(LogicalError) as unknown:
        await provider.create_order(OrderRequest("ref-unknown", "NOPE", 1))
    assert unknown.value.reason is LogicalReason.INVALID_PACKAGE
    with pytest.raises(LogicalError) as price:
        await provider.create_order(
            OrderRequest("ref-price", "CKH002", 1, expected_unit_cost=Money(17000, "USD"))
        )
    assert price.value.reason is LogicalReason.PRICE_CHANGED
    state.balance = 100
    with pytest.raises(LogicalError) as funds:
        await provider.create_order(OrderRequest("ref-poor", "CKH002", 1))
    assert funds.value.reason is LogicalReason.INSUFFICIENT_FUNDS
    with pytest.raises(LogicalError):
        await provider.create_order(OrderRequest("ref-many", "CKH002", 31))


# --- (d) usage -------------------------------------------------------------------------------


async def test_usage_bytes_and_raw_status(
    provider: EsimAccessProvider, state: FakeState, clock: FrozenClock
) -> None:
    purchase = await _completed(provider, "ref-usage", quantity=3)
    new, active, depleted = (e.provider_esim_id for e in purchase.esims)
    state.set_status(active, "IN_USE", "ENABLED")
    state.set_usage(active, 1_453_344_832)
    state.set_status(depleted, "USED_UP", "DISABLED")
    state.set_usage(depleted, 3 * GIB)
    refs = [
        EsimRef(e.iccid, e.provider_esim_id, purchase.provider_order_id) for e in purchase.esims
    ]
    reports = {r.esim.provider_esim_id: r for r in await provider.query_usage(refs)}
    assert set(reports) == {new, active, depleted}
    expected = {
        new: ({"esimStatus": "GOT_RESOURCE", "smdpStatus": "RELEASED"}, 0, EsimStatus.NEW),
        active: (
            {"esimStatus": "IN_USE", "smdpStatus": "ENABLED"},
            1_453_344_832,
            EsimStatus.ACTIVE,
        ),
        depleted: (
            {"esimStatus": "USED_UP", "smdpStatus": "DISABLED"},
            3 * GIB,
            EsimStatus.DEPLETED,
        ),
    }
    for tran_no, (raw, used, api_status) in expected.items():
        report = reports[tran_no]
        assert dict(report.raw_status) == raw
        assert report.used_bytes == used and report.total_bytes == 3 * GIB
        assert report.observed_at == START
        assert report.esim.provider_order_id == purchase.provider_order_id
        status = normalise(
            "esimaccess",
            report.raw_status,
            used_bytes=report.used_bytes,
            total_bytes=report.total_bytes,
            expires_at=report.expires_at,
            now=clock.now(),
        )
        assert status.api_status is api_status
    assert reports[active].activated_at == START
    assert reports[active].last_usage_at == START.replace(minute=0)
    assert reports[new].expires_at == START + timedelta(days=180)
    assert state.calls("/esim/usage/query")[0] == {"esimTranNoList": [new, active, depleted]}


async def test_usage_is_keyed_on_esim_tran_no_not_reused_iccid(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    purchase = await _completed(provider, "ref-reuse", quantity=3)
    first, _, third = purchase.esims
    assert first.iccid == third.iccid  # the fake reuses ICCIDs, like the real upstream
    state.set_usage(third.provider_esim_id, 42)
    (report,) = await provider.query_usage([EsimRef(third.iccid, third.provider_esim_id)])
    assert report.esim.provider_esim_id == third.provider_esim_id and report.used_bytes == 42


async def test_usage_cancelled_and_unknown(
    provider: EsimAccessProvider, state: FakeState, clock: FrozenClock
) -> None:
    purchase = await _completed(provider, "ref-usage-cancel")
    esim = purchase.esims[0]
    state.set_status(esim.provider_esim_id, "CANCEL", "RELEASED")
    reports = await provider.query_usage(
        [EsimRef(esim.iccid, esim.provider_esim_id), EsimRef("0000", "no-such-esim")]
    )
    assert len(reports) == 1
    status = normalise(
        "esimaccess",
        reports[0].raw_status,
        used_bytes=0,
        total_bytes=reports[0].total_bytes,
        expires_at=None,
        now=clock.now(),
    )
    assert status.api_status is EsimStatus.CANCELLED
    with pytest.raises(LogicalError):
        await provider.query_usage([EsimRef("x", f"id{i}") for i in range(11)])


# --- (e) top-up, (f) cancel ------------------------------------------------------------------


async def test_top_up(provider: EsimAccessProvider, state: FakeState) -> None:
    await provider.list_packages()
    esim = (await _completed(provider, "ref-for-topup")).esims[0]
    ref = EsimRef(esim.iccid, esim.provider_esim_id)
    balance = state.balance
    result = await provider.top_up(TopUpRequest("top-1", ref, "TOPUP_CKH002_1"))
    assert result.state is PurchaseState.COMPLETED and result.reference == "top-1"
    assert result.total_bytes == 4 * GIB and result.unit_cost == Money(9999, "USD")
    assert result.expires_at is not None
    sent = state.calls("/esim/topup")[0]
    assert sent == {
        "esimTranNo": esim.provider_esim_id,
        "packageCode": "TOPUP_CKH002_1",
        "transactionId": "top-1",
    }
    again = await provider.top_up(TopUpRequest("top-1", ref, "TOPUP_CKH002_1"))
    assert again.total_bytes == 4 * GIB and state.balance == balance - 9999
    state.set_status(esim.provider_esim_id, "USED_EXPIRED", "ENABLED")
    with pytest.raises(LogicalError) as caught:
        await provider.top_up(TopUpRequest("top-2", ref, "TOPUP_CKH002_1"))
    assert caught.value.reason is LogicalReason.NOT_ALLOWED


async def test_cancel(provider: EsimAccessProvider, state: FakeState) -> None:
    purchase = await _completed(provider, "ref-cancel", quantity=2)
    fresh, used = purchase.esims
    balance = state.balance
    result = await provider.cancel(EsimRef(fresh.iccid, fresh.provider_esim_id))
    assert result.cancelled and state.esims[fresh.provider_esim_id].esim_status == "CANCEL"
    assert state.balance == balance + 18000
    state.set_status(used.provider_esim_id, "IN_USE", "ENABLED")
    refused = await provider.cancel(EsimRef(used.iccid, used.provider_esim_id))
    assert not refused.cancelled and refused.reason
    with pytest.raises(LogicalError) as caught:
        await provider.cancel(EsimRef("0000", "no-such-esim"))
    assert caught.value.reason is LogicalReason.NOT_FOUND


# --- (g) faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["http_500", "invalid_json", "redirect", "commit_500", "huge"])
async def test_technical_faults_are_ambiguous(
    provider: EsimAccessProvider, state: FakeState, mode: str
) -> None:
    state.fail("/esim/order", mode)
    with pytest.raises(TechnicalError) as caught:
        await provider.create_order(OrderRequest(f"ref-{mode}", "CKH002", 1))
    assert caught.value.committed is None
    if mode == "commit_500":  # it was bought: get_order settles it, the retry does not re-buy
        state.clear_faults()
        retried = await provider.create_order(OrderRequest(f"ref-{mode}", "CKH002", 1))
        assert retried.provider_order_id == state.orders[f"ref-{mode}"].order_no
        assert state.balance == 10_000_000 - 18000


async def test_rate_limited(provider: EsimAccessProvider, state: FakeState) -> None:
    state.fail("/package/list", "http_429", retry_after="7")
    with pytest.raises(TechnicalError) as caught:
        await provider.list_packages()
    assert caught.value.retry_after == 7.0


async def test_busy_code_is_technical(provider: EsimAccessProvider, state: FakeState) -> None:
    state.fail("/esim/order", "business", code="900001")
    with pytest.raises(TechnicalError) as caught:
        await provider.create_order(OrderRequest("ref-busy", "CKH002", 1))
    assert caught.value.committed is None


async def test_connect_error_is_not_committed(clock: FrozenClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    adapter = _adapter_over(httpx.MockTransport(refuse), clock)
    with pytest.raises(TechnicalError) as caught:
        await adapter.create_order(OrderRequest("ref-down", "CKH002", 1))
    assert caught.value.committed is False
    await adapter.aclose()


async def test_read_timeout_is_ambiguous(clock: FrozenClock) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    adapter = _adapter_over(httpx.MockTransport(hang), clock)
    with pytest.raises(TechnicalError) as caught:
        await adapter.create_order(OrderRequest("ref-slow", "CKH002", 1))
    assert caught.value.committed is None
    await adapter.aclose()


async def test_schema_violation_is_technical(clock: FrozenClock) -> None:
    def odd(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": True, "errorCode": "0", "obj": {"nope": 1}})

    adapter = _adapter_over(httpx.MockTransport(odd), clock)
    with pytest.raises(TechnicalError):
        await adapter.create_order(OrderRequest("ref-odd", "CKH002", 1))
    with pytest.raises(TechnicalError):  # not even an envelope
        await _adapter_over(
            httpx.MockTransport(lambda r: httpx.Response(200, json=[1, 2])), clock
        ).list_packages()
    await adapter.aclose()


async def test_slow_answer_still_works(provider: EsimAccessProvider, state: FakeState) -> None:
    state.fail("/package/list", "slow", delay=0.05)
    assert await provider.list_packages()


# --- wire quirks, config, webhooks ----------------------------------------------------------


def test_envelope_quirks() -> None:
    drift = wire.Envelope.model_validate(
        {"success": "false", "errorCode": 200010, "errorMessage": "allocating", "obj": None}
    )
    assert not drift.ok and drift.error_code == "200010" and drift.error_msg == "allocating"
    assert wire.Envelope.model_validate({"success": "true", "errorCode": None}).ok
    assert wire.Envelope.model_validate({"success": True, "errorCode": "0"}).ok
    assert wire.parse_time("2024-05-29T18:34:17+0000") == datetime(
        2024, 5, 29, 18, 34, 17, tzinfo=UTC
    )
    assert wire.parse_time("2026-04-22T17:16:34Z") == datetime(2026, 4, 22, 17, 16, 34, tzinfo=UTC)
    assert wire.parse_time(None) is None and wire.parse_time("soon") is None


async def test_from_config(clock: FrozenClock) -> None:
    config = AdapterConfig(
        "ea",
        None,
        {"access_code": "abc", "secret_key": "s"},
        clock,
        sessions=None,  # type: ignore[arg-type]
    )
    adapter = EsimAccessProvider.from_config(config)
    assert adapter.kind == "esimaccess" and adapter.requests_per_second == 8.0
    assert adapter.max_usage_batch == 10
    assert Capability.TOPUP in adapter.capabilities and Capability.CANCEL in adapter.capabilities
    assert Capability.WEBHOOKS in adapter.capabilities
    assert str(adapter._client._http.base_url).rstrip("/") == BASE_URL
    assert adapter._client._http.follow_redirects is False
    await adapter.aclose()
    with pytest.raises(ValueError, match="access_code"):
        EsimAccessProvider.from_config(AdapterConfig("ea", None, {}, clock, sessions=None))  # type: ignore[arg-type]


def test_webhooks_are_unsigned_so_only_the_source_ip_is_checked() -> None:
    assert is_webhook_source("3.1.131.226")
    assert not is_webhook_source("203.0.113.7")


async def test_streamed_oversized_body_is_cut_off(clock: FrozenClock) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield b" " * (1024 * 1024)

    adapter = _adapter_over(
        httpx.MockTransport(lambda r: httpx.Response(200, content=chunks())), clock
    )
    with pytest.raises(TechnicalError, match="larger than"):
        await adapter.create_order(OrderRequest("ref-huge", "CKH002", 1))
    await adapter.aclose()


async def test_key_only_mode_sends_no_hmac_headers(clock: FrozenClock) -> None:
    app, state = make_app(access_code=ACCESS, secret_key=None)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    adapter = EsimAccessProvider(EsimAccessClient(http, ACCESS, None, clock=clock), clock=clock)
    assert await adapter.list_packages()
    headers = state.requests[0][1]
    assert headers["rt-accesscode"] == ACCESS and "rt-signature" not in headers
    await adapter.aclose()
