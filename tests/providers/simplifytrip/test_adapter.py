"""SimplifyTrip adapter against the fake upstream (tests/fakes/simplifytrip.py) over ASGI."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from esimgate.clock import FrozenClock
from esimgate.esims.models import EsimStatus
from esimgate.esims.status import normalise
from esimgate.esims.units import GIB, MIB
from esimgate.providers.base import (
    Capability,
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
    OrderRequest,
    Provider,
    Purchase,
    PurchaseState,
    TechnicalError,
    TopUpRequest,
    UsageReport,
)
from esimgate.providers.registry import AdapterConfig
from esimgate.providers.simplifytrip.adapter import (
    BASE_URL,
    SimplifyTripProvider,
    parse_time,
    verify_webhook,
)
from esimgate.providers.simplifytrip.client import SimplifyTripClient
from esimgate.providers.simplifytrip.wire import canonical, sign
from tests.fakes.simplifytrip import API_KEY, CHECKSUM_KEY, SECRET_KEY, FakeState, make_app

NOW = datetime(2025, 5, 14, 12, 0, tzinfo=UTC)


def _client(transport: httpx.AsyncBaseTransport, **keys: str) -> SimplifyTripClient:
    http = httpx.AsyncClient(transport=transport, base_url=BASE_URL, follow_redirects=False)
    return SimplifyTripClient(
        http,
        api_key=keys.get("api_key", API_KEY),
        secret_key=keys.get("secret_key", SECRET_KEY),
        checksum_key=keys.get("checksum_key", CHECKSUM_KEY),
    )


@pytest.fixture
def fake() -> tuple[object, FakeState]:
    return make_app()


@pytest.fixture
def state(fake: tuple[object, FakeState]) -> FakeState:
    return fake[1]


@pytest.fixture
async def provider(fake: tuple[object, FakeState]) -> AsyncIterator[SimplifyTripProvider]:
    app, _ = fake
    adapter = SimplifyTripProvider(
        _client(httpx.ASGITransport(app=app)),  # type: ignore[arg-type]
        clock=FrozenClock(NOW),
    )
    yield adapter
    await adapter.aclose()


async def _completed(
    provider: SimplifyTripProvider, state: FakeState, ref: str, qty: int = 1
) -> Purchase:
    purchase = await provider.create_order(OrderRequest(ref, "E23XY06GB08DFX", qty))
    assert purchase.state is PurchaseState.PENDING
    state.fulfil(ref)
    done = await provider.get_order(ref)
    assert done is not None and done.state is PurchaseState.COMPLETED
    return done


# --- signing ------------------------------------------------------------------------------


def test_signature_matches_the_doc_vector() -> None:
    body: dict[str, object] = {
        "trackId": "b4b08205-836e-4296-a054-52462089edf6",
        "items": [
            {
                "subTrackId": "958acd57-182f-4b5c-b408-5e93f646ddde",
                "sku": "E23XY06GB08DFX",
                "quantity": 2,
            }
        ],
    }
    text = (
        "items_0_quantity=2&items_0_sku=E23XY06GB08DFX"
        "&items_0_subTrackId=958acd57-182f-4b5c-b408-5e93f646ddde"
        "&trackId=b4b08205-836e-4296-a054-52462089edf6"
    )
    independent = hmac.new(b"ck_test_example", text.encode(), hashlib.sha256).hexdigest()
    assert independent == "6e4a7c25ff066e0120c8fabc2fed9b221190f625df397ac6189003dd8eff651e"
    assert canonical(body) == text
    assert sign(body, "ck_test_example") == independent


def test_canonical_renders_scalars_and_skips_empty_containers() -> None:
    body: dict[str, object] = {
        "b": True,
        "a": None,
        "c": [],
        "d": {},
        "e": {"x": False, "y": [1, "z"]},
    }
    assert canonical(body) == "a=null&b=true&e_x=false&e_y_0=1&e_y_1=z"


async def test_requests_carry_auth_and_signature(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    await provider.create_order(OrderRequest("ref-auth", "E23XY06GB08DFX", 1))
    post = next(r for r in state.requests if r["method"] == "POST")
    headers = post["headers"]
    assert headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert headers["x-api-key"] == API_KEY
    assert headers["x-signature"] == sign(post["body"], CHECKSUM_KEY)
    get = next(r for r in state.requests if r["method"] == "GET")
    assert "x-signature" not in get["headers"]


# --- (a) catalogue ------------------------------------------------------------------------


async def test_catalogue(provider: SimplifyTripProvider) -> None:
    packages = {p.provider_code: p for p in await provider.list_packages()}
    # Physical SIMs are not sold through esimgate; the upstream documents no top-up packages.
    assert set(packages) == {"E23XY06GB08DFX", "E23XY500MB01DPY", "EHKXY01GB03DFX"}
    india = packages["E23XY06GB08DFX"]
    assert india.cost == Money(73_500, "USD")
    assert india.data_bytes == 6 * GIB
    assert india.validity_days == 8
    assert [(c.country_code, c.country_name) for c in india.coverage] == [("IN", "India")]
    assert india.region == "India"
    assert not india.is_topup and not india.daily_data
    daily = packages["E23XY500MB01DPY"]
    assert daily.cost == Money(41_234, "USD")  # "4.1234" as text, exact
    assert daily.data_bytes == 500 * MIB and daily.daily_data and daily.validity_days == 5
    hk = packages["EHKXY01GB03DFX"]
    assert hk.cost == Money(15_000, "USD") and hk.data_bytes == GIB
    assert [c.country_code for c in hk.coverage] == ["HK"]
    assert all(not p.is_topup for p in packages.values())


async def test_catalogue_pages_through_everything(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    base = state.products[0]
    for n in range(150):
        clone = json.loads(json.dumps(base))
        clone["spu"] = f"X{n}"
        for sku in clone["skus"]:
            sku["sku"] = f"{sku['sku']}-{n}"
        state.products.append(clone)
    packages = await provider.list_packages()
    assert len(packages) == 3 + 150 * 2
    skips = [r["query"]["skip"] for r in state.requests if r["path"] == "/api/v1/products"]
    assert skips == ["0", "100"]


async def test_catalogue_skips_unusable_skus(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    state.products[1]["skus"].append({"sku": "BAD1", "days": 3, "data": "lots", "price": 1})
    state.products[1]["skus"].append({"sku": "BAD2", "days": 3, "data": "1GB"})  # no price
    codes = {p.provider_code for p in await provider.list_packages()}
    assert "BAD1" not in codes and "BAD2" not in codes and "EHKXY01GB03DFX" in codes


# --- (b), (c) orders ----------------------------------------------------------------------


async def test_order_is_async_then_completes(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    purchase = await provider.create_order(OrderRequest("ord-1", "E23XY06GB08DFX", 2))
    assert purchase.state is PurchaseState.PENDING
    assert purchase.provider_order_id == state.orders["ord-1"].order_id
    sent = next(r for r in state.requests if r["method"] == "POST")["body"]
    assert sent["trackId"] == "ord-1"
    assert sent["items"] == [{"subTrackId": "ord-1-1", "sku": "E23XY06GB08DFX", "quantity": 2}]

    still = await provider.get_order("ord-1")
    assert still is not None and still.state is PurchaseState.PENDING

    state.fulfil("ord-1")
    done = await provider.get_order("ord-1")
    assert done is not None and done.state is PurchaseState.COMPLETED
    assert len(done.esims) == 2
    esim = done.esims[0]
    fake_esim = state.orders["ord-1"].esims[0]
    assert esim.iccid == fake_esim.iccid == esim.provider_esim_id
    assert esim.smdp_address == "SECSMSMINIAPP.EASTCOMPEACE.COM"
    assert esim.matching_id == fake_esim.activation_code
    assert esim.lpa == f"LPA:1$SECSMSMINIAPP.EASTCOMPEACE.COM${fake_esim.activation_code}"


async def test_retrying_create_does_not_buy_twice(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    first = await provider.create_order(OrderRequest("ord-2", "E23XY06GB08DFX", 1))
    again = await provider.create_order(OrderRequest("ord-2", "E23XY06GB08DFX", 1))
    assert again.provider_order_id == first.provider_order_id
    assert state.create_calls == 1 and len(state.orders) == 1


async def test_duplicate_refusal_is_reconciled(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    # A concurrent create got in between our lookup and our POST: the lookup misses, the upstream
    # then refuses the duplicate trackId, and the adapter answers with the existing order.
    state.place(
        {"trackId": "ord-3", "items": [{"subTrackId": "x", "sku": "E23XY06GB08DFX", "quantity": 1}]}
    )
    state.fail("get_order", "http_404")
    found = await provider.create_order(OrderRequest("ord-3", "E23XY06GB08DFX", 1))
    assert found.state is PurchaseState.PENDING
    assert found.provider_order_id == state.orders["ord-3"].order_id
    assert len(state.orders) == 1
    refusals = [r for r in state.requests if r["method"] == "POST"]
    assert len(refusals) == 1  # the POST was made and refused as a duplicate


async def test_other_refusals_are_not_reconciled(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    state.duplicate_code = "TRACK_ID_TAKEN"  # an errorCode the adapter does not read as duplicate
    state.place(
        {
            "trackId": "ord-3b",
            "items": [{"subTrackId": "x", "sku": "E23XY06GB08DFX", "quantity": 1}],
        }
    )
    state.fail("get_order", "http_404")
    with pytest.raises(LogicalError) as refused:
        await provider.create_order(OrderRequest("ord-3b", "E23XY06GB08DFX", 1))
    assert refused.value.upstream_code == "TRACK_ID_TAKEN"


async def test_500_after_commit_then_retry_finds_the_order(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    state.fail("create_order", "http_500_after_commit")
    with pytest.raises(TechnicalError) as failed:
        await provider.create_order(OrderRequest("ord-4", "E23XY06GB08DFX", 1))
    assert failed.value.committed is None
    again = await provider.create_order(OrderRequest("ord-4", "E23XY06GB08DFX", 1))
    assert again.provider_order_id == state.orders["ord-4"].order_id
    assert len(state.orders) == 1


async def test_get_order_unknown_is_none(provider: SimplifyTripProvider) -> None:
    assert await provider.get_order("no-such-ref") is None


async def test_failed_order(provider: SimplifyTripProvider, state: FakeState) -> None:
    await provider.create_order(OrderRequest("ord-5", "E23XY06GB08DFX", 1))
    state.fail_order("ord-5", "Out of stock")
    failed = await provider.get_order("ord-5")
    assert failed is not None and failed.state is PurchaseState.FAILED
    assert failed.failure_reason == "Out of stock"


async def test_unknown_sku_is_invalid_package(provider: SimplifyTripProvider) -> None:
    with pytest.raises(LogicalError) as refused:
        await provider.create_order(OrderRequest("ord-6", "NOPE", 1))
    assert refused.value.reason is LogicalReason.INVALID_PACKAGE


# --- (d) usage ----------------------------------------------------------------------------


async def test_usage_bytes_and_raw_status(provider: SimplifyTripProvider, state: FakeState) -> None:
    done = await _completed(provider, state, "use-1")
    iccid = done.esims[0].iccid
    ref = EsimRef(iccid, iccid, done.provider_order_id)

    def status(report: UsageReport) -> EsimStatus:
        return normalise(
            "simplifytrip",
            report.raw_status,
            used_bytes=report.used_bytes,
            total_bytes=report.total_bytes,
            expires_at=report.expires_at,
            now=NOW,
        ).api_status

    [fresh] = await provider.query_usage([ref])
    assert fresh.raw_status == {"status": "NOT_DOWNLOADED", "planStatus": "UNUSED"}
    assert fresh.used_bytes == 0 and fresh.total_bytes == 6 * GIB
    assert fresh.observed_at == NOW and fresh.esim.provider_order_id == done.provider_order_id
    assert status(fresh) is EsimStatus.NEW

    state.set_usage(
        iccid,
        used=123_456_789,
        plan_status="IN_USE",
        profile_status="ENABLED",
        plan_start="2025-05-14T01:00:00.000Z",
        plan_end="2025-05-22T01:00:00.000Z",
    )
    [active] = await provider.query_usage([ref])
    assert active.raw_status == {"status": "ENABLED", "planStatus": "IN_USE"}
    assert active.used_bytes == 123_456_789
    assert active.activated_at == datetime(2025, 5, 14, 1, 0, tzinfo=UTC)
    assert active.expires_at == datetime(2025, 5, 22, 1, 0, tzinfo=UTC)
    assert active.last_usage_at == datetime(2025, 5, 14, tzinfo=UTC)
    assert status(active) is EsimStatus.ACTIVE

    state.set_usage(iccid, used=6 * GIB, plan_status="IN_USE")
    [depleted] = await provider.query_usage([ref])
    assert status(depleted) is EsimStatus.DEPLETED

    state.set_usage(iccid, used=6 * GIB, plan_status="EXPIRED")
    [expired] = await provider.query_usage([ref])
    assert expired.raw_status["planStatus"] == "EXPIRED"
    assert status(expired) is EsimStatus.EXPIRED

    state.set_usage(
        iccid,
        used=1,
        plan_status="IN_USE",
        profile_status="DELETED",
        record_time="2025-05-15 09:00:00",
    )
    [deleted] = await provider.query_usage([ref])
    assert deleted.raw_status["status"] == "DELETED"
    assert status(deleted) is EsimStatus.DELETED


async def test_usage_daily_plan_total_and_unknown_iccid(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    await provider.create_order(OrderRequest("use-2", "E23XY500MB01DPY", 1))
    order = state.fulfil("use-2")
    iccid = order.esims[0].iccid
    [report] = await provider.query_usage([EsimRef(iccid, iccid)])
    assert report.total_bytes == 5 * 500 * MIB  # DAILY: per-day cap × days
    assert await provider.query_usage([EsimRef("8900000000000000000", "x")]) == []
    with pytest.raises(LogicalError):
        await provider.query_usage([EsimRef("1", "1"), EsimRef("2", "2")])


def _info_calls(state: FakeState, iccid: str) -> list[str]:
    """The information endpoints asked about one ICCID, in order."""
    wanted = (f"/api/v1/products/esim/{iccid}", f"/api/v1/products/sim/{iccid}")
    return [r["path"] for r in state.requests if r["path"] in wanted]


async def test_physical_sim_usage_is_reported(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    sim = state.add_sim(
        used=1_234_567_891,
        plan_status="IN_USE",
        profile_status="ENABLED",
        plan_start="2025-05-14T01:00:00.000Z",
        plan_end="2025-05-21T01:00:00.000Z",
    )
    [report] = await provider.query_usage([EsimRef(sim.iccid, sim.iccid)])
    assert report.used_bytes == 1_234_567_891
    assert report.total_bytes == 5 * GIB  # SKU SVNXY05GB07DFX: "5GB"
    assert report.raw_status == {"status": "ENABLED", "planStatus": "IN_USE"}
    assert report.esim == EsimRef(sim.iccid, sim.iccid, sim.order_id)
    assert report.activated_at == datetime(2025, 5, 14, 1, 0, tzinfo=UTC)
    assert report.expires_at == datetime(2025, 5, 21, 1, 0, tzinfo=UTC)
    assert report.last_usage_at == datetime(2025, 5, 14, tzinfo=UTC)
    assert report.observed_at == NOW
    # The eSIM endpoint first (404), then the physical one, both with our keys.
    assert _info_calls(state, sim.iccid) == [
        f"/api/v1/products/esim/{sim.iccid}",
        f"/api/v1/products/sim/{sim.iccid}",
    ]
    asked = next(r for r in state.requests if r["path"].startswith("/api/v1/products/sim/"))
    assert asked["method"] == "GET"
    assert asked["headers"]["authorization"] == f"Bearer {SECRET_KEY}"
    assert asked["headers"]["x-api-key"] == API_KEY


async def test_unknown_iccid_is_absent_after_both_endpoints(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    iccid = "8984049000000000999"
    assert await provider.query_usage([EsimRef(iccid, iccid)]) == []
    assert _info_calls(state, iccid) == [
        f"/api/v1/products/esim/{iccid}",
        f"/api/v1/products/sim/{iccid}",
    ]


async def test_esim_endpoint_is_preferred(provider: SimplifyTripProvider, state: FakeState) -> None:
    done = await _completed(provider, state, "pref-1")
    iccid = done.esims[0].iccid
    state.set_usage(iccid, used=42, plan_status="IN_USE")
    [report] = await provider.query_usage([EsimRef(iccid, iccid)])
    assert report.used_bytes == 42 and report.total_bytes == 6 * GIB
    assert _info_calls(state, iccid) == [f"/api/v1/products/esim/{iccid}"]
    assert not any(r["path"].startswith("/api/v1/products/sim/") for r in state.requests)


@pytest.mark.parametrize("mode", ["http_500", "http_429", "invalid_json", "redirect", "oversized"])
async def test_physical_sim_faults_are_technical(
    provider: SimplifyTripProvider, state: FakeState, mode: str
) -> None:
    sim = state.add_sim(used=7, plan_status="IN_USE")
    state.fail("sim", mode)
    with pytest.raises(TechnicalError):
        await provider.query_usage([EsimRef(sim.iccid, sim.iccid)])
    [report] = await provider.query_usage([EsimRef(sim.iccid, sim.iccid)])  # one-off fault
    assert report.used_bytes == 7


async def test_esim_endpoint_fault_does_not_fall_back(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    sim = state.add_sim(used=7, plan_status="IN_USE")
    state.fail("esim", "http_500")
    with pytest.raises(TechnicalError):
        await provider.query_usage([EsimRef(sim.iccid, sim.iccid)])
    assert _info_calls(state, sim.iccid) == [f"/api/v1/products/esim/{sim.iccid}"]


async def test_physical_sim_refusal_other_than_not_found_is_raised(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    sim = state.add_sim(used=7, plan_status="IN_USE")
    state.fail("sim", "business_error")
    with pytest.raises(LogicalError) as refused:
        await provider.query_usage([EsimRef(sim.iccid, sim.iccid)])
    assert refused.value.reason is not LogicalReason.NOT_FOUND


def test_parse_time_formats() -> None:
    assert parse_time("2025-05-13T14:42:07.069Z") == datetime(
        2025, 5, 13, 14, 42, 7, 69000, tzinfo=UTC
    )
    # Naive upstream local time is taken as UTC+8 (inferred from the doc's sample).
    assert parse_time("2025-05-13 22:42:42") == datetime(2025, 5, 13, 14, 42, 42, tzinfo=UTC)
    assert parse_time(None) is None and parse_time("garbage") is None


# --- (e) top-up, (f) cancel ---------------------------------------------------------------


async def test_top_up_is_not_supported(provider: SimplifyTripProvider) -> None:
    assert Capability.TOPUP not in provider.capabilities
    with pytest.raises(LogicalError) as refused:
        await provider.top_up(TopUpRequest("t-1", EsimRef("1", "1"), "X"))
    assert refused.value.reason is LogicalReason.NOT_ALLOWED


async def test_cancel_unused_single_esim_order(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    done = await _completed(provider, state, "can-1")
    iccid = done.esims[0].iccid
    result = await provider.cancel(EsimRef(iccid, iccid, done.provider_order_id))
    assert result.cancelled
    assert state.orders["can-1"].status == "CANCELLED"
    post = [r for r in state.requests if r["path"] == "/api/v1/orders/cancel"]
    assert post[0]["body"] == {"orderId": done.provider_order_id}
    after = await provider.get_order("can-1")
    assert after is not None and after.state is PurchaseState.FAILED


async def test_cancel_finds_order_id_from_the_esim(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    done = await _completed(provider, state, "can-2")
    iccid = done.esims[0].iccid
    assert (await provider.cancel(EsimRef(iccid, iccid))).cancelled


async def test_cancel_refusals(provider: SimplifyTripProvider, state: FakeState) -> None:
    used = await _completed(provider, state, "can-3")
    iccid = used.esims[0].iccid
    state.set_usage(iccid, used=10, plan_status="IN_USE", profile_status="ENABLED")
    refused = await provider.cancel(EsimRef(iccid, iccid, used.provider_order_id))
    assert not refused.cancelled and refused.reason == "Order is SUCCESS"

    two = await _completed(provider, state, "can-4", qty=2)
    iccid = two.esims[0].iccid
    multi = await provider.cancel(EsimRef(iccid, iccid, two.provider_order_id))
    assert not multi.cancelled and "2 eSIMs" in (multi.reason or "")
    assert state.orders["can-4"].status == "SUCCESS"


# --- (g) faults ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["http_500", "invalid_json", "redirect", "oversized"])
async def test_technical_faults(
    provider: SimplifyTripProvider, state: FakeState, mode: str
) -> None:
    state.fail("products", mode)
    with pytest.raises(TechnicalError) as failed:
        await provider.list_packages()
    assert failed.value.committed is None
    assert len(await provider.list_packages()) == 3  # the fault was one-off


async def test_create_faults_are_ambiguous(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    for mode in ("http_500", "invalid_json", "redirect"):
        state.fail("create_order", mode)
        with pytest.raises(TechnicalError) as failed:
            await provider.create_order(OrderRequest(f"flt-{mode}", "E23XY06GB08DFX", 1))
        assert failed.value.committed is None


async def test_429_has_retry_after(provider: SimplifyTripProvider, state: FakeState) -> None:
    state.fail("esim", "http_429")
    with pytest.raises(TechnicalError) as failed:
        await provider.query_usage([EsimRef("1", "1")])
    assert failed.value.retry_after == 7.0


async def test_business_error_is_logical(provider: SimplifyTripProvider, state: FakeState) -> None:
    state.fail("create_order", "business_error")
    with pytest.raises(LogicalError) as refused:
        await provider.create_order(OrderRequest("biz-1", "E23XY06GB08DFX", 1))
    assert refused.value.reason is LogicalReason.INSUFFICIENT_FUNDS
    assert refused.value.upstream_code == "INSUFFICIENT_BALANCE"
    assert "biz-1" not in state.orders


async def test_slow_response_still_answers(
    provider: SimplifyTripProvider, state: FakeState
) -> None:
    state.slow_seconds = 0.05
    state.fail("products", "slow")
    assert len(await provider.list_packages()) == 3


async def test_connect_error_is_not_committed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    adapter = SimplifyTripProvider(_client(httpx.MockTransport(refuse)))
    with pytest.raises(TechnicalError) as failed:
        await adapter.create_order(OrderRequest("c-1", "E23XY06GB08DFX", 1))
    assert failed.value.committed is False
    await adapter.aclose()


async def test_read_timeout_is_ambiguous() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    adapter = SimplifyTripProvider(_client(httpx.MockTransport(slow)))
    with pytest.raises(TechnicalError) as failed:
        await adapter.get_order("r-1")
    assert failed.value.committed is None
    await adapter.aclose()


async def test_bad_keys_are_refused(fake: tuple[object, FakeState]) -> None:
    app, _ = fake
    adapter = SimplifyTripProvider(
        _client(httpx.ASGITransport(app=app), secret_key="sk_test_wrong")  # type: ignore[arg-type]
    )
    with pytest.raises(TechnicalError) as failed:
        await adapter.list_packages()
    assert failed.value.committed is False and "401" in failed.value.message
    await adapter.aclose()


async def test_bad_signature_is_refused(fake: tuple[object, FakeState]) -> None:
    app, state = fake
    adapter = SimplifyTripProvider(
        _client(httpx.ASGITransport(app=app), checksum_key="ck_test_wrong")  # type: ignore[arg-type]
    )
    with pytest.raises(LogicalError) as refused:
        await adapter.create_order(OrderRequest("sig-1", "E23XY06GB08DFX", 1))
    assert refused.value.upstream_code == "INVALID_SIGNATURE"
    assert not state.orders
    await adapter.aclose()


async def test_schema_violation_is_technical() -> None:
    def odd(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": "not a list"})

    adapter = SimplifyTripProvider(_client(httpx.MockTransport(odd)))
    with pytest.raises(TechnicalError):
        await adapter.list_packages()
    await adapter.aclose()


# --- webhooks -----------------------------------------------------------------------------


async def test_webhook_signature(provider: SimplifyTripProvider, state: FakeState) -> None:
    await provider.create_order(OrderRequest("wh-1", "E23XY06GB08DFX", 1))
    state.fulfil("wh-1")
    headers, raw = state.webhook("wh-1")
    assert verify_webhook(headers, raw, CHECKSUM_KEY)
    assert not verify_webhook(headers, raw, "ck_test_other")
    assert not verify_webhook(headers, raw.replace(b"wh-1", b"wh-2"), CHECKSUM_KEY)
    assert not verify_webhook({}, raw, CHECKSUM_KEY)
    assert not verify_webhook(headers, b"not json", CHECKSUM_KEY)


def test_webhook_vector() -> None:
    raw = (
        b'{"id":"6740ce7f9d042322159bc6401","type":"PURCHASE_ORDER_SUCCESS",'
        b'"data":{"orderId":"3248417841","trackId":"t-1","total":12.50,"ok":true}}'
    )
    # Numbers are signed as sent ("12.50"), keys flattened and sorted.
    text = (
        "data_ok=true&data_orderId=3248417841&data_total=12.50&data_trackId=t-1"
        "&id=6740ce7f9d042322159bc6401&type=PURCHASE_ORDER_SUCCESS"
    )
    digest = hmac.new(b"ck_test_example", text.encode(), hashlib.sha256).hexdigest()
    assert verify_webhook({"x-simplify-trip-signature": digest}, raw, "ck_test_example")
    assert verify_webhook({"X-Simplify-Trip-Signature": digest.upper()}, raw, "ck_test_example")


# --- construction -------------------------------------------------------------------------


async def test_from_config_and_port_shape() -> None:
    config = AdapterConfig(
        name="st",
        base_url=None,
        credentials={"apiKey": API_KEY, "secretKey": SECRET_KEY, "checksumKey": CHECKSUM_KEY},
        clock=FrozenClock(NOW),
        sessions=None,  # type: ignore[arg-type]
    )
    adapter = SimplifyTripProvider.from_config(config)
    assert isinstance(adapter, Provider)
    assert adapter.kind == "simplifytrip"
    assert adapter.max_usage_batch == 1
    assert adapter.requests_per_second == pytest.approx(100 / 3)
    http = adapter._client._http
    assert str(http.base_url) == BASE_URL + "/"
    assert http.follow_redirects is False
    await adapter.aclose()
    with pytest.raises(ValueError, match="checksumKey"):
        SimplifyTripProvider.from_config(
            AdapterConfig("st", None, {"apiKey": "a", "secretKey": "b"}, FrozenClock(NOW), None)  # type: ignore[arg-type]
        )
