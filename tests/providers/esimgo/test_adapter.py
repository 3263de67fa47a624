"""eSIM Go adapter against the fake upstream (tests/fakes/esimgo.py) over httpx.ASGITransport."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette

from esimgate.catalog.identity import identity_key
from esimgate.clock import FrozenClock
from esimgate.esims.models import EsimStatus
from esimgate.esims.status import normalise
from esimgate.providers.base import (
    Capability,
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
    NetworkSighting,
    OrderRequest,
    PackageKind,
    Provider,
    Purchase,
    PurchaseState,
    TechnicalError,
    TopUpRequest,
    UsageReport,
    WebhookReceiver,
)
from esimgate.providers.countries import country_code
from esimgate.providers.esimgo.adapter import (
    EsimGoProvider,
    lpa_string,
    verify_webhook,
    webhook_signature,
)
from esimgate.providers.esimgo.client import EsimGoClient, classify
from esimgate.providers.esimgo.wire import Callback, parse_time, split_plmn
from esimgate.providers.http import retry_after_seconds
from esimgate.providers.registry import AdapterConfig
from tests.fakes.esimgo import API_KEY, SMDP, FakeState, make_app

BASE_URL = "https://api.esim-go.test/v2.5"
NOW = datetime(2026, 1, 3, 12, 0, tzinfo=UTC)


@dataclass
class Rig:
    provider: EsimGoProvider
    state: FakeState
    app: Starlette


def build(app: Starlette, api_key: str = API_KEY, **kwargs: object) -> EsimGoProvider:
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, follow_redirects=False
    )
    return EsimGoProvider(
        EsimGoClient(http, api_key),
        clock=FrozenClock(NOW),
        order_spacing_seconds=0,
        webhook_key=api_key,
    )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    app, state = make_app()
    provider = build(app)
    yield Rig(provider, state, app)
    await provider.aclose()


async def buy(
    rig: Rig, reference: str = "ord_1", code: str = "esim_1GB_7D_GB_V2", quantity: int = 1
) -> Purchase:
    return await rig.provider.create_order(OrderRequest(reference, code, quantity))


# --- signing and parsing vectors --------------------------------------------------------------

DOC_BODY = (
    b'{"iccid":"8944538532008160222","alertType":"Utilisation","bundle":{"id":"215009266",'
    b'"reference":"3a6e2e40-c674-45e9-b289-b35027bf72a9-0","name":"esim_1GB_7D_GB_V2",'
    b'"description":"eSIM, 1GB, 7 Days, United Kingdom, V2","initialQuantity":1000000000,'
    b'"remainingQuantity":500000000,"startTime":"2025-01-02T15:04:05Z",'
    b'"endTime":"2025-01-09T15:04:05Z","unlimited":false}}'
)
DOC_SIGNATURE = "BaB8ZR12a0T3UKddw/un3WlZXNwhijh+y6urZKpZunA="
DOC_HEX = "05a07c651d766b44f750a75dc3fba7dd69595cdc218a387ecbabab64aa59ba70"


def test_webhook_signature_matches_the_doc_vector() -> None:
    independent = base64.b64encode(
        hmac.new(b"api-key-example", DOC_BODY, hashlib.sha256).digest()
    ).decode()
    assert independent == DOC_SIGNATURE
    assert hmac.new(b"api-key-example", DOC_BODY, hashlib.sha256).hexdigest() == DOC_HEX
    assert webhook_signature(DOC_BODY, "api-key-example") == DOC_SIGNATURE


def test_verify_webhook_base64_hex_and_tampering() -> None:
    assert verify_webhook({"X-Signature-SHA256": DOC_SIGNATURE}, DOC_BODY, "api-key-example")
    assert verify_webhook({"x-signature-sha256": DOC_HEX}, DOC_BODY, "api-key-example")
    assert verify_webhook({"X-SIGNATURE-SHA256": DOC_HEX.upper()}, DOC_BODY, "api-key-example")
    assert not verify_webhook(
        {"X-Signature-SHA256": DOC_SIGNATURE}, DOC_BODY + b" ", "api-key-example"
    )
    assert not verify_webhook({"X-Signature-SHA256": DOC_SIGNATURE}, DOC_BODY, "other-key")
    assert not verify_webhook({}, DOC_BODY, "api-key-example")
    assert not verify_webhook({"X-Signature-SHA256": DOC_SIGNATURE}, DOC_BODY, "")


def test_callback_with_numeric_iccid_keeps_every_digit() -> None:
    raw = (
        b'{ "alertType": "FirstUse", "iccid": 8944538532008160222, "bundle": {"name": '
        b'"A_BUNDLE_1GB", "initialQuantity": 1000000000, "remainingQuantity": 1000000000.00}}'
    )
    event = Callback.model_validate(json.loads(raw, parse_float=Decimal))
    assert event.iccid == "8944538532008160222"
    assert event.bundle is not None and event.bundle.remainingQuantity == Decimal("1000000000.00")
    # Strings keep leading zeros.
    assert Callback.model_validate({"alertType": "x", "iccid": "0089440001"}).iccid == "0089440001"


def test_wire_helpers() -> None:
    assert parse_time("2023-06-15T10:30:45.123456789Z") == datetime(
        2023, 6, 15, 10, 30, 45, 123456, tzinfo=UTC
    )
    assert parse_time(1723541877280) == datetime(2024, 8, 13, 9, 37, 57, 280000, tzinfo=UTC)
    assert parse_time("garbage") is None
    assert lpa_string("http://smdp.example.com", "A1B2") == "LPA:1$smdp.example.com$A1B2"
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("soon") is None
    assert classify(400, "Insufficient balance") is LogicalReason.INSUFFICIENT_FUNDS
    assert classify(403, "no bundles left") is LogicalReason.OUT_OF_STOCK
    assert classify(403, "ICCID not accessible") is LogicalReason.NOT_FOUND
    assert classify(400, "Bundle not found: x") is LogicalReason.INVALID_PACKAGE
    assert classify(400, "something else") is LogicalReason.REJECTED


# --- the port, the constructor ------------------------------------------------------------------


async def test_from_config_and_port(rig: Rig) -> None:
    config = AdapterConfig("go", None, {"api_key": "k"}, FrozenClock(NOW), None)  # type: ignore[arg-type]
    provider = EsimGoProvider.from_config(config)
    try:
        assert isinstance(provider, Provider)
        assert provider.kind == "esimgo"
        assert provider.requests_per_second == 1.0
        assert Capability.CANCEL not in provider.capabilities
        assert {
            Capability.CATALOGUE,
            Capability.ORDER,
            Capability.ORDER_LOOKUP,
            Capability.LIVE_STATUS,
        } <= provider.capabilities
    finally:
        await provider.aclose()
    with pytest.raises(ValueError, match="api_key"):
        EsimGoProvider.from_config(
            AdapterConfig("go", None, {}, FrozenClock(NOW), None)  # type: ignore[arg-type]
        )


async def test_wrong_api_key_is_a_technical_error_that_never_committed(rig: Rig) -> None:
    provider = build(rig.app, api_key="wrong")
    with pytest.raises(TechnicalError) as caught:
        await provider.list_packages()
    assert caught.value.committed is False
    await provider.aclose()


# --- (a) catalogue ------------------------------------------------------------------------------


async def test_catalogue_money_bytes_and_topups(rig: Rig) -> None:
    packages = {p.provider_code: p for p in await rig.provider.list_packages()}
    assert set(packages) == {b["name"] for b in rig.state.bundles}
    gb = packages["esim_1GB_7D_GB_V2"]
    assert gb.cost == Money(17000, "USD")  # 1.7 exactly, not 16999
    assert gb.data_bytes == 1_000_000_000  # dataAmount 1000 decimal MB
    assert gb.validity_days == 7
    assert gb.kind is PackageKind.LOCAL and gb.region == "United Kingdom"
    assert [(c.country_code, c.country_name) for c in gb.coverage] == [("GB", "United Kingdom")]
    assert not gb.is_topup
    eu = packages["esim_5GB_30D_EU_V3"]
    assert eu.cost == Money(99900, "USD")
    assert eu.kind is PackageKind.REGIONAL and eu.region == "Europe"
    assert {c.country_code for c in eu.coverage} == {"GB", "FR", "DE"}
    unlimited = packages["esim_UL_1D_GB_V2"]
    assert unlimited.data_bytes is None and unlimited.cost == Money(20500, "USD")
    topup = packages["esim_topup_1GB_7D_GB"]
    assert topup.is_topup and topup.cost == Money(15000, "USD")


async def test_decimal_gigabyte_is_exact_bytes_and_not_a_binary_gigabyte(rig: Rig) -> None:
    rig.state.bundles = [
        b for b in rig.state.bundles if b["name"] == "esim_1GB_7D_GB_V2"
    ]  # dataAmount 1000 (MB)
    [package] = await rig.provider.list_packages()
    assert package.data_bytes == 1000 * 1_000_000 == 1_000_000_000
    # Another upstream's binary 1 GB package with everything else equal is another product.
    binary = replace(package, provider_code="other", data_bytes=1024**3)
    assert identity_key(package) != identity_key(binary)
    assert identity_key(package) == identity_key(replace(package, provider_code="other"))


async def test_a_broken_bundle_is_skipped_not_fatal(rig: Rig) -> None:
    rig.state.bundles.append({"name": "esim_broken", "price": "not a price"})
    codes = {p.provider_code for p in await rig.provider.list_packages()}
    assert "esim_broken" not in codes and "esim_1GB_7D_GB_V2" in codes


async def test_catalogue_paginates() -> None:
    app, state = make_app()
    state.bundles = state.bundles * 60  # 240 rows → 3 pages of 100
    provider = build(app)
    assert len(await provider.list_packages()) == 240
    pages = [p for m, p, _ in state.requests if p.endswith("/catalogue")]
    assert len(pages) == 3
    await provider.aclose()


# --- (b) orders, (c) lookup ---------------------------------------------------------------------


async def test_order_is_validated_bought_once_and_tagged_with_our_reference(rig: Rig) -> None:
    purchase = await buy(rig, quantity=2)
    assert purchase.state is PurchaseState.COMPLETED
    assert purchase.reference == "ord_1"
    assert purchase.unit_cost == Money(17000, "USD")
    assert len(purchase.esims) == 2
    for esim in purchase.esims:
        assert esim.smdp_address == SMDP
        assert esim.lpa == f"LPA:1${SMDP}${esim.matching_id}"
        assert esim.provider_esim_id == esim.iccid
        assert rig.state.esims[esim.iccid].customer_ref == "esimgate:ord_1"
    kinds = [b["type"] for m, p, b in rig.state.requests if m == "POST" and p.endswith("/orders")]
    assert kinds == ["validate", "transaction"]
    assert rig.state.transactions()[0]["assign"] is True

    again = await buy(rig, quantity=2)  # a retry with the same reference
    assert len(rig.state.transactions()) == 1
    assert {e.iccid for e in again.esims} == {e.iccid for e in purchase.esims}
    assert again.state is PurchaseState.COMPLETED


async def test_order_details_from_the_assignments_endpoint(rig: Rig) -> None:
    rig.state.omit_esims_in_order = True
    purchase = await buy(rig)
    assert purchase.state is PurchaseState.COMPLETED
    assert len(purchase.esims) == 1
    assert any(p.endswith("/esims/assignments") for _, p, _ in rig.state.requests)


async def test_get_order_by_our_reference(rig: Rig) -> None:
    assert await rig.provider.get_order("nope") is None
    purchase = await buy(rig, reference="ord_7")
    # A fresh adapter (another process) finds it through customerRef alone.
    other = build(rig.app)
    found = await other.get_order("ord_7")
    assert found is not None
    assert found.state is PurchaseState.COMPLETED
    assert found.esims == purchase.esims
    assert await other.get_order("ord_") is None
    await other.aclose()


async def test_order_refusals(rig: Rig) -> None:
    with pytest.raises(LogicalError) as caught:
        await buy(rig, code="esim_NOPE")
    assert caught.value.reason is LogicalReason.INVALID_PACKAGE
    with pytest.raises(LogicalError) as caught:
        await rig.provider.create_order(
            OrderRequest("ord_p", "esim_1GB_7D_GB_V2", 1, expected_unit_cost=Money(10000, "USD"))
        )
    assert caught.value.reason is LogicalReason.PRICE_CHANGED
    with pytest.raises(LogicalError):
        await buy(rig, quantity=11)
    rig.state.balance = 1.0
    with pytest.raises(LogicalError) as caught:
        await buy(rig, reference="ord_poor")
    assert caught.value.reason is LogicalReason.INSUFFICIENT_FUNDS
    assert rig.state.transactions() and not rig.state.orders  # tried, refused, nothing bought
    assert await rig.provider.get_order("ord_poor") is None  # a definite no is not ambiguous
    with pytest.raises(LogicalError) as caught:
        await rig.provider.cancel(EsimRef("8944", "8944"))
    assert caught.value.reason is LogicalReason.NOT_ALLOWED


async def test_unanswered_transaction_is_never_bought_again(rig: Rig) -> None:
    rig.state.fault("orders:transaction", "http_500_after_commit")
    with pytest.raises(TechnicalError) as caught:
        await buy(rig, reference="ord_lost")
    assert caught.value.committed is None
    assert len(rig.state.orders) == 1  # the upstream did buy
    rig.state.clear_faults()
    with pytest.raises(TechnicalError):
        await rig.provider.get_order("ord_lost")  # not "no such order": that would refund
    with pytest.raises(TechnicalError):
        await buy(rig, reference="ord_lost")
    assert len(rig.state.transactions()) == 1


async def test_untagged_order_is_found_after_a_restart_by_the_stored_order_id(rig: Rig) -> None:
    rig.state.fault("esims_update", "http_500")  # customerRef tagging never sticks
    purchase = await buy(rig, reference="ord_r")
    assert purchase.provider_order_id
    rig.state.clear_faults()
    other = build(rig.app)  # another process: no memory of the transaction
    try:
        assert await other.get_order("ord_r") is None  # nothing tagged with our reference
        found = await other.get_order("ord_r", purchase.provider_order_id)
        assert found is not None and found.state is PurchaseState.COMPLETED
        assert found.esims == purchase.esims
        assert rig.state.esims[purchase.esims[0].iccid].customer_ref == "esimgate:ord_r"
    finally:
        await other.aclose()


async def test_tagging_failure_still_returns_the_purchase(rig: Rig) -> None:
    rig.state.fault("esims_update", "http_500")
    purchase = await buy(rig, reference="ord_t")
    assert purchase.state is PurchaseState.COMPLETED and purchase.provider_order_id
    rig.state.clear_faults()
    found = await rig.provider.get_order("ord_t")  # via GET /orders/{ref}, then tags
    assert found is not None and found.esims == purchase.esims
    assert rig.state.esims[purchase.esims[0].iccid].customer_ref == "esimgate:ord_t"


# --- (d) usage ----------------------------------------------------------------------------------


async def usage(rig: Rig, iccid: str) -> UsageReport:
    [report] = await rig.provider.query_usage([EsimRef(iccid, iccid)])
    return report


def api_status(report: UsageReport) -> EsimStatus:
    return normalise(
        "esimgo",
        report.raw_status,
        used_bytes=report.used_bytes,
        total_bytes=report.total_bytes,
        expires_at=report.expires_at,
        now=NOW,
    ).api_status


async def test_usage_bytes_raw_status_and_normalised_status(rig: Rig) -> None:
    purchase = await buy(rig)
    iccid = purchase.esims[0].iccid

    report = await usage(rig, iccid)  # first read: processing
    assert report.raw_status == {"bundleState": "processing", "profileStatus": "Released"}
    assert (report.used_bytes, report.total_bytes) == (0, 1_000_000_000)
    assert api_status(report) is EsimStatus.NEW

    report = await usage(rig, iccid)
    assert report.raw_status == {"bundleState": "queued", "profileStatus": "Released"}
    assert api_status(report) is EsimStatus.NEW

    rig.state.set_profile(iccid, "Installed", installed_ms=1767300000000)
    rig.state.use(iccid, 250_000_000)
    report = await usage(rig, iccid)
    assert report.raw_status == {"bundleState": "active", "profileStatus": "Installed"}
    assert (report.used_bytes, report.total_bytes) == (250_000_000, 1_000_000_000)
    assert report.activated_at == datetime(2026, 1, 2, 15, 4, 5, 123456, tzinfo=UTC)
    assert report.expires_at == datetime(2026, 1, 9, 15, 4, 5, 123456, tzinfo=UTC)
    assert api_status(report) is EsimStatus.ACTIVE

    rig.state.use(iccid, 1_000_000_000)
    report = await usage(rig, iccid)
    assert report.raw_status["bundleState"] == "depleted"
    assert report.used_bytes == report.total_bytes == 1_000_000_000
    assert api_status(report) is EsimStatus.DEPLETED

    rig.state.set_state(iccid, "expired")
    report = await usage(rig, iccid)
    assert report.raw_status["bundleState"] == "expired"
    assert api_status(report) is EsimStatus.EXPIRED

    rig.state.set_state(iccid, "revoked")
    rig.state.set_profile(iccid, "Deactivated")
    assert api_status(await usage(rig, iccid)) is EsimStatus.DELETED


async def test_usage_unlimited_and_unknown_esim(rig: Rig) -> None:
    purchase = await buy(rig, code="esim_UL_1D_GB_V2")
    report = await usage(rig, purchase.esims[0].iccid)
    assert report.total_bytes is None
    assert await rig.provider.query_usage([EsimRef("8944999", "8944999")]) == []


def test_split_plmn() -> None:
    assert split_plmn("23410") == ("234", "10")
    assert split_plmn("310410") == ("310", "410")  # three-digit MNC
    assert split_plmn(" 234-15 ") == ("234", "15")
    assert split_plmn("10") == ("", "10")  # the MNC alone: the MCC is unknown
    assert split_plmn("2341012") == ("", "")  # not a PLMN: no guess
    assert split_plmn("O2") == ("", "")
    assert split_plmn(None) == ("", "")


def test_country_code_accepts_codes_and_names() -> None:
    assert country_code("gb") == "GB"
    assert country_code("GBR") == "GB"
    assert country_code("United Kingdom") == "GB"
    assert country_code("Korea- Republic of") == "KR"  # eSIM Go's catalogue spelling
    assert country_code("South Korea") == "KR"
    assert country_code("Réunion") == "RE"
    assert country_code("the Netherlands") == "NL"
    assert country_code("UK") == "GB"
    assert country_code("Narnia") is None
    assert country_code(" ") is None


async def attached(rig: Rig) -> str:
    """A bought eSIM, installed, with some data used."""
    iccid = (await buy(rig)).esims[0].iccid
    rig.state.set_profile(iccid, "Installed", installed_ms=1767300000000)
    rig.state.use(iccid, 250_000_000)
    return iccid


def location_calls(rig: Rig, iccid: str) -> list[str]:
    return [p for m, p, _ in rig.state.requests if p == f"/v2.5/esims/{iccid}/location"]


async def test_location_fills_last_network() -> None:
    app, state = make_app()
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        event_hooks={"request": [record]},
    )
    provider = EsimGoProvider(
        EsimGoClient(http, API_KEY), clock=FrozenClock(NOW), order_spacing_seconds=0
    )
    rig = Rig(provider, state, app)
    try:
        iccid = await attached(rig)
        state.set_location(iccid, mcc="234", mnc="10", name="O2 - UK", brand="O2 UK", country="GB")
        seen.clear()
        report = await usage(rig, iccid)
        assert report.last_network == NetworkSighting(
            operator="O2 UK", mcc="234", mnc="10", country_code="GB", connection_type=""
        )
        # Usage is unchanged by the lookup; lastSeen is no data-usage time.
        assert (report.used_bytes, report.total_bytes) == (250_000_000, 1_000_000_000)
        assert report.raw_status == {"bundleState": "active", "profileStatus": "Installed"}
        assert report.last_usage_at is None
        [call] = [r for r in seen if r.url.path.endswith("/location")]
        assert call.method == "GET"
        assert call.url.path == f"/v2.5/esims/{iccid}/location"
        assert call.headers["X-API-Key"] == API_KEY
        assert location_calls(rig, iccid) == [f"/v2.5/esims/{iccid}/location"]
    finally:
        await provider.aclose()


async def test_location_network_name_country_name_and_three_digit_mnc(rig: Rig) -> None:
    iccid = await attached(rig)
    rig.state.set_location(
        iccid, mcc="310", mnc="410", name="AT&T Mobility", brand=None, country="United States"
    )
    assert (await usage(rig, iccid)).last_network == NetworkSighting(
        "AT&T Mobility", "310", "410", "US", ""
    )
    rig.state.set_location(iccid, name="Somewhere Mobile", brand="", country="Narnia")
    assert (await usage(rig, iccid)).last_network == NetworkSighting(
        "Somewhere Mobile", "234", "10", "", ""
    )


async def test_never_attached_esim_has_no_network(rig: Rig) -> None:
    iccid = (await buy(rig)).esims[0].iccid
    report = await usage(rig, iccid)  # Released, never installed: not even asked
    assert report.last_network is None
    assert location_calls(rig, iccid) == []

    rig.state.set_profile(iccid, "Installed", installed_ms=1767300000000)
    report = await usage(rig, iccid)  # installed, never attached: the upstream says 404
    assert report.last_network is None
    assert report.raw_status["profileStatus"] == "Installed"
    assert report.total_bytes == 1_000_000_000
    assert len(location_calls(rig, iccid)) == 1

    # An answer that names no network is no sighting either.
    rig.state.esims[iccid].location = {
        "mobileNetworkCode": "",
        "networkName": "",
        "country": "",
        "lastSeen": None,
    }
    assert (await usage(rig, iccid)).last_network is None
    assert len(location_calls(rig, iccid)) == 2


@pytest.mark.parametrize(
    "mode", ["http_500", "http_503", "http_429", "invalid_json", "redirect", "business_error"]
)
async def test_location_failure_keeps_the_usage_report(rig: Rig, mode: str) -> None:
    iccid = await attached(rig)
    rig.state.set_location(iccid)
    rig.state.fault("location", mode)  # type: ignore[arg-type]
    report = await usage(rig, iccid)
    assert report.last_network is None
    assert (report.used_bytes, report.total_bytes) == (250_000_000, 1_000_000_000)
    assert report.raw_status == {"bundleState": "active", "profileStatus": "Installed"}
    assert len(location_calls(rig, iccid)) == 1
    rig.state.clear_faults()
    assert (await usage(rig, iccid)).last_network is not None


# --- (e) top-up ---------------------------------------------------------------------------------


async def test_top_up_compatible_bundle_once(rig: Rig) -> None:
    iccid = (await buy(rig)).esims[0].iccid
    request = TopUpRequest("top_1", EsimRef(iccid, iccid), "esim_topup_1GB_7D_GB")
    result = await rig.provider.top_up(request)
    assert result.state is PurchaseState.COMPLETED
    assert result.unit_cost == Money(15000, "USD")
    assert result.total_bytes == 1_000_000_000
    body = rig.state.transactions()[-1]
    assert body["assign"] is True
    assert body["order"] == [
        {
            "type": "bundle",
            "item": "esim_topup_1GB_7D_GB",
            "quantity": 1,
            "iccids": [iccid],
            "allowReassign": False,
        }
    ]
    assert await rig.provider.top_up(request) == result
    assert len(rig.state.transactions()) == 2  # the order and one top-up
    report = await usage(rig, iccid)
    assert report.total_bytes == 2_000_000_000


async def test_top_up_refusals_and_lost_answer(rig: Rig) -> None:
    iccid = (await buy(rig)).esims[0].iccid
    with pytest.raises(LogicalError) as caught:  # a Europe bundle cannot top up a GB-only eSIM
        await rig.provider.top_up(TopUpRequest("t0", EsimRef(iccid, iccid), "esim_5GB_30D_EU_V3"))
    assert caught.value.reason is LogicalReason.NOT_ALLOWED

    rig.state.fault("orders:transaction", "http_500_after_commit")
    request = TopUpRequest("t1", EsimRef(iccid, iccid), "esim_topup_1GB_7D_GB")
    with pytest.raises(TechnicalError):
        await rig.provider.top_up(request)
    rig.state.clear_faults()
    result = await rig.provider.top_up(request)  # found the new assignment: not bought again
    assert result.state is PurchaseState.COMPLETED
    assert len(rig.state.transactions()) == 2


# --- (g) faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["http_500", "invalid_json", "redirect", "schema", "http_503"])
async def test_faults_are_technical_and_maybe_committed(rig: Rig, mode: str) -> None:
    rig.state.fault("orders:transaction", mode)  # type: ignore[arg-type]
    with pytest.raises(TechnicalError) as caught:
        await buy(rig, reference=f"ord_{mode}")
    assert caught.value.committed is None
    rig.state.fault("catalogue", mode)  # type: ignore[arg-type]
    with pytest.raises(TechnicalError):
        await rig.provider.list_packages()


async def test_rate_limited_carries_retry_after(rig: Rig) -> None:
    rig.state.fault("catalogue", "http_429")
    with pytest.raises(TechnicalError) as caught:
        await rig.provider.list_packages()
    assert caught.value.retry_after == 7.0


async def test_business_error_is_logical(rig: Rig) -> None:
    rig.state.fault("orders", "business_error")
    with pytest.raises(LogicalError) as caught:
        await buy(rig)
    assert caught.value.reason is LogicalReason.INSUFFICIENT_FUNDS
    assert caught.value.upstream_code == "400"
    assert not rig.state.orders


class Raising(httpx.AsyncBaseTransport):
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "committed"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("slow connect"), False),
        (httpx.ReadTimeout("slow answer"), None),
        (httpx.RemoteProtocolError("dropped"), None),
    ],
)
async def test_transport_errors(exc: Exception, committed: bool | None) -> None:
    http = httpx.AsyncClient(transport=Raising(exc), base_url=BASE_URL)
    provider = EsimGoProvider(EsimGoClient(http, API_KEY), order_spacing_seconds=0)
    with pytest.raises(TechnicalError) as caught:
        await provider.create_order(OrderRequest("ord_x", "esim_1GB_7D_GB_V2", 1))
    assert caught.value.committed is committed
    await provider.aclose()


async def test_oversized_body_is_refused() -> None:
    huge = b"[" + b" " * (6 * 1024 * 1024) + b"]"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=huge, headers={"Content-Type": "application/json"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url=BASE_URL)
    provider = EsimGoProvider(EsimGoClient(http, API_KEY), order_spacing_seconds=0)
    with pytest.raises(TechnicalError, match="body"):
        await provider.list_packages()
    await provider.aclose()


async def test_slow_fake_still_answers(rig: Rig) -> None:
    rig.state.fault("catalogue", "slow")
    rig.state.slow_seconds = 0.01
    assert await rig.provider.list_packages()


async def test_fake_callback_verifies(rig: Rig) -> None:
    iccid = (await buy(rig)).esims[0].iccid
    rig.state.use(iccid, 10)
    body, headers = rig.state.callback(iccid)
    assert f'"iccid":{iccid},'.encode() in body  # a JSON number, as eSIM Go sends it
    assert verify_webhook(headers, body, API_KEY)
    event = Callback.model_validate(json.loads(body, parse_float=Decimal))
    assert event.iccid == iccid


async def test_parse_webhook_numeric_iccid_and_refusals(rig: Rig) -> None:
    assert isinstance(rig.provider, WebhookReceiver)
    iccid = (await buy(rig)).esims[0].iccid
    rig.state.use(iccid, 10)
    body, headers = rig.state.callback(iccid)
    notice = rig.provider.parse_webhook(headers, body, "203.0.113.10")
    assert notice.iccid == iccid and notice.kind == "Utilisation"
    assert notice.event_id == hashlib.sha256(body).hexdigest()
    assert notice.reference is None
    with pytest.raises(LogicalError):
        rig.provider.parse_webhook(headers, body + b" ", "203.0.113.10")
    with pytest.raises(LogicalError):
        rig.provider.parse_webhook({}, body, "203.0.113.10")
    junk = b"[1, 2]"
    signed = {"X-Signature-SHA256": webhook_signature(junk, API_KEY)}
    with pytest.raises(LogicalError):
        rig.provider.parse_webhook(signed, junk, "203.0.113.10")
