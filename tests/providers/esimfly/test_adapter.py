"""Contract tests: EsimflyProvider against the fake esimfly upstream (tests/fakes/esimfly.py)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from esimgate.esims.models import EsimStatus
from esimgate.esims.status import normalise
from esimgate.esims.units import GIB
from esimgate.providers.base import (
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
    OrderRequest,
    PurchaseState,
    TechnicalError,
    TopUpRequest,
)
from esimgate.providers.esimfly.adapter import EsimflyProvider, verify_webhook
from esimgate.providers.esimfly.client import EsimflyClient, sign
from tests.fakes.esimfly import ACCESS_CODE, SECRET_KEY, FakeState, Fault, make_app

BASE_URL = "http://esimfly.test/api/v1/business/"


def _adapter(transport: httpx.AsyncBaseTransport) -> EsimflyProvider:
    http = httpx.AsyncClient(transport=transport, base_url=BASE_URL, follow_redirects=False)
    return EsimflyProvider(EsimflyClient(http, ACCESS_CODE, SECRET_KEY))


@pytest.fixture
async def env() -> AsyncIterator[tuple[EsimflyProvider, FakeState]]:
    app, state = make_app()
    adapter = _adapter(httpx.ASGITransport(app=app))
    yield adapter, state
    await adapter.aclose()


def test_signature_vectors_from_the_doc() -> None:
    ts, rid, ac, sk = (
        "1628670421000",
        "4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2",
        "esf_11111",
        "sk_1111",
    )
    body = '{"packageCode":"PHAJHEAYP"}'
    expected = "FA2050B34D3C61025B991E8C82967BC583C02A92ED625D985F46DC7E25BFA934"
    independent = hmac.new(sk.encode(), (ts + rid + ac + body).encode(), hashlib.sha256)
    assert independent.hexdigest().upper() == expected
    assert sign(sk, ts, rid, ac, body) == expected
    get = "F0B625B05DD9B5D5402286987CE4A6D14AC52B0056D2A1592ABBB57BA5FC3BC4"
    assert sign(sk, ts, rid, ac, "") == get


def test_webhook_signature_vector() -> None:
    body = (
        b'{"event":"esim.provisioned","timestamp":"2026-04-13T10:05:30.000Z","data":'
        b'{"order_reference":"order_1776079539762_hvkrk","iccid":"8981100000012345678"}}'
    )
    digest = "2776c19bf81c4fe1e6c3324511423d7040195429e2629100c53fec6c9bdd50e5"
    assert verify_webhook({"X-Webhook-Signature": f"sha256={digest}"}, body, "whsec_example")
    assert verify_webhook(
        {"x-webhook-signature": f"sha256={digest.upper()}"}, body, "whsec_example"
    )
    assert not verify_webhook(
        {"X-Webhook-Signature": f"sha256={digest}"}, body + b" ", "whsec_example"
    )
    assert not verify_webhook({}, body, "whsec_example")


async def test_catalogue(env: tuple[EsimflyProvider, FakeState]) -> None:
    adapter, _state = env
    # Buy once so the adapter knows an ICCID to list the (per-eSIM) top-ups with.
    await adapter.create_order(OrderRequest("ref-cat", "PHAJHEAYP", 1))
    packages = {p.provider_code: p for p in await adapter.list_packages()}
    us = packages["PHAJHEAYP"]
    assert us.cost == Money(14_400, "USD")
    assert us.data_bytes == GIB
    assert us.validity_days == 7 and us.rechargeable and not us.is_topup
    assert [c.country_code for c in us.coverage] == ["US"]
    assert us.coverage[0].country_name == "United States"
    assert {n.operator for n in us.coverage[0].networks} == {"Verizon", "T-Mobile"}
    unl = packages["EU-UNL-5D"]
    assert unl.data_bytes is None and unl.cost == Money(125_000, "USD")
    assert {c.country_code for c in unl.coverage} == {"FR", "DE"}
    assert packages["JP-KDDI-12GB"].data_bytes == 12 * GIB
    topup = packages["TOPUP_PXOO225PI"]
    assert topup.is_topup and topup.topup_for == frozenset({"PHAJHEAYP"})
    assert topup.cost == Money(105_600, "USD") and topup.data_bytes == 3 * GIB


async def test_order_sync_idempotent(env: tuple[EsimflyProvider, FakeState]) -> None:
    adapter, state = env
    purchase = await adapter.create_order(OrderRequest("ref-1", "PHAJHEAYP", 1))
    assert purchase.state is PurchaseState.COMPLETED
    assert purchase.unit_cost == Money(14_400, "USD")
    (esim,) = purchase.esims
    assert esim.smdp_address == "rsp-3104.idemia.io" and esim.lpa.startswith("LPA:1$")
    assert state.received[-1]["idempotency_key"] == "ref-1"
    again = await adapter.create_order(OrderRequest("ref-1", "PHAJHEAYP", 1))
    assert again.esims == purchase.esims and state.orders_placed == 1
    assert state.balance == 100 - state.orders[purchase.provider_order_id or ""].amount
    found = await adapter.get_order("ref-1")
    assert found is not None and found.state is PurchaseState.COMPLETED
    assert found.esims[0].iccid == esim.iccid


async def test_order_async_then_completed(env: tuple[EsimflyProvider, FakeState]) -> None:
    adapter, _state = env
    purchase = await adapter.create_order(OrderRequest("ref-jp", "JP-KDDI-12GB", 1))
    assert purchase.state is PurchaseState.PENDING and purchase.provider_order_id
    first = await adapter.get_order("ref-jp")
    assert first is not None and first.state is PurchaseState.PENDING
    done = await adapter.get_order("ref-jp")
    assert done is not None and done.state is PurchaseState.COMPLETED and len(done.esims) == 1


async def test_get_order_unknown(env: tuple[EsimflyProvider, FakeState]) -> None:
    adapter, _state = env
    with pytest.raises(TechnicalError):  # never seen here: esimfly can't search by key
        await adapter.get_order("nope")
    adapter._orders["ghost"] = "order_0_00000"  # known upstream reference, gone upstream
    assert await adapter.get_order("ghost") is None


async def test_ambiguous_create_settled_by_replay(env: tuple[EsimflyProvider, FakeState]) -> None:
    adapter, state = env
    state.faults["esims/order"] = Fault("http500", times=1)
    with pytest.raises(TechnicalError) as info:
        await adapter.create_order(OrderRequest("ref-amb", "PHAJHEAYP", 1))
    assert info.value.committed is None
    settled = await adapter.get_order("ref-amb")
    assert settled is not None and settled.state is PurchaseState.COMPLETED
    assert state.orders_placed == 1


async def test_usage_and_status(env: tuple[EsimflyProvider, FakeState]) -> None:
    adapter, state = env
    purchase = await adapter.create_order(OrderRequest("ref-u", "PHAJHEAYP", 1))
    iccid = purchase.esims[0].iccid
    ref = EsimRef(iccid, iccid)
    now = datetime.now(UTC)
    cases = [
        ({}, "0", EsimStatus.NEW),
        (
            {"status": "ACTIVE", "esim_status": "Active", "profile": "Enabled"},
            "256",
            EsimStatus.ACTIVE,
        ),
        ({"status": "DEPLETED"}, "1024", EsimStatus.DEPLETED),
        ({"status": "EXPIRED"}, "10", EsimStatus.EXPIRED),
        ({"status": "CANCELLED"}, "0", EsimStatus.CANCELLED),
    ]
    for fields, used, expected in cases:
        state.set_usage(iccid, used_mb=used, **fields)
        (report,) = await adapter.query_usage([ref])
        esim = state.esims[iccid]
        assert report.used_bytes == int(used) * 1024 * 1024 and report.total_bytes == GIB
        assert report.raw_status == {
            "status": esim.status,
            "esim_status": esim.esim_status,
            "smdp_status": esim.smdp_status,
            "profile": esim.profile,
        }
        result = normalise(
            "esimfly",
            report.raw_status,
            used_bytes=report.used_bytes,
            total_bytes=report.total_bytes,
            expires_at=None,
            now=now,
        )
        assert result.api_status is expected, fields
    assert report.last_network is not None and report.last_network.country_code == "US"
    assert await adapter.query_usage([EsimRef("000", "000")]) == []


async def test_top_up(env: tuple[EsimflyProvider, FakeState]) -> None:
    adapter, state = env
    iccid = (await adapter.create_order(OrderRequest("ref-t", "PHAJHEAYP", 1))).esims[0].iccid
    request = TopUpRequest("top-1", EsimRef(iccid, iccid), "TOPUP_PXOO225PI")
    result = await adapter.top_up(request)
    assert result.state is PurchaseState.COMPLETED
    assert result.unit_cost == Money(105_600, "USD") and result.total_bytes == 4 * GIB
    assert (await adapter.top_up(request)) == result and state.topups_placed == 1
    # An ambiguous attempt that went through is recognised by the grown volume, not re-bought.
    ambiguous = TopUpRequest("top-2", EsimRef(iccid, iccid), "TOPUP_PXOO225PI")
    real_topup_order = adapter.client.topup_order

    async def lost_answer(*args: object) -> object:
        await real_topup_order(*args)  # type: ignore[arg-type]
        raise TechnicalError("read timeout")

    adapter.client.topup_order = lost_answer  # type: ignore[method-assign,assignment]
    with pytest.raises(TechnicalError):
        await adapter.top_up(ambiguous)
    adapter.client.topup_order = real_topup_order  # type: ignore[method-assign]
    settled = await adapter.top_up(ambiguous)
    assert settled.state is PurchaseState.COMPLETED and state.topups_placed == 2
    with pytest.raises(LogicalError) as info:
        await adapter.top_up(TopUpRequest("top-3", EsimRef(iccid, iccid), "NOPE"))
    assert info.value.reason is LogicalReason.INVALID_PACKAGE


async def test_cancel(env: tuple[EsimflyProvider, FakeState]) -> None:
    adapter, state = env
    iccid = (await adapter.create_order(OrderRequest("ref-c", "PHAJHEAYP", 1))).esims[0].iccid
    result = await adapter.cancel(EsimRef(iccid, iccid))
    assert result.cancelled and result.refund == Money(14_400, "USD")
    assert (await adapter.cancel(EsimRef(iccid, iccid))).cancelled  # ALREADY_CANCELLED
    used = (await adapter.create_order(OrderRequest("ref-c2", "PHAJHEAYP", 1))).esims[0].iccid
    state.set_usage(used, status="ACTIVE")
    refused = await adapter.cancel(EsimRef(used, used))
    assert not refused.cancelled and refused.reason


@pytest.mark.parametrize("kind", ["http500", "invalid_json", "redirect"])
async def test_technical_faults(env: tuple[EsimflyProvider, FakeState], kind: str) -> None:
    adapter, state = env
    state.faults["esims/order"] = Fault(kind)
    with pytest.raises(TechnicalError) as info:
        await adapter.create_order(OrderRequest("ref-f", "PHAJHEAYP", 1))
    assert info.value.committed is None


async def test_rate_limited(env: tuple[EsimflyProvider, FakeState]) -> None:
    adapter, state = env
    state.faults["esims/packages"] = Fault("429", retry_after="7")
    with pytest.raises(TechnicalError) as info:
        await adapter.list_packages()
    assert info.value.retry_after == 7.0


async def test_business_errors(env: tuple[EsimflyProvider, FakeState]) -> None:
    adapter, state = env
    with pytest.raises(LogicalError) as info:
        await adapter.create_order(OrderRequest("ref-b", "UNKNOWN", 1))
    assert info.value.reason is LogicalReason.INVALID_PACKAGE
    state.balance = state.balance - state.balance
    with pytest.raises(LogicalError) as info:
        await adapter.create_order(OrderRequest("ref-b2", "PHAJHEAYP", 1))
    assert info.value.reason is LogicalReason.INSUFFICIENT_FUNDS
    state.faults["esims/order"] = Fault("business", code="PRICE_MISMATCH")
    with pytest.raises(LogicalError) as info:
        await adapter.create_order(OrderRequest("ref-b3", "PHAJHEAYP", 1))
    assert info.value.reason is LogicalReason.PRICE_CHANGED


async def test_connect_error_is_uncommitted() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    adapter = _adapter(httpx.MockTransport(refuse))
    with pytest.raises(TechnicalError) as info:
        await adapter.create_order(OrderRequest("ref-x", "PHAJHEAYP", 1))
    assert info.value.committed is False
    await adapter.aclose()


async def test_bad_credentials_rejected_by_fake() -> None:
    app, _state = make_app(secret_key="sk_other")
    adapter = _adapter(httpx.ASGITransport(app=app))
    with pytest.raises(TechnicalError) as info:
        await adapter.list_packages()
    assert "INVALID_SIGNATURE" in info.value.message
    await adapter.aclose()
