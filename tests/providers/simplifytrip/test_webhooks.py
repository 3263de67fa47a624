"""SimplifyTrip inbound webhooks: ``parse_webhook`` verifies ``X-Simplify-Trip-Signature``
(HMAC-SHA256 with the checksumKey over the flattened, sorted body, doc §2.2/§6) and reduces a
delivery to a :class:`ProviderNotice`. Signatures here are computed independently of the
adapter's canonicaliser."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from esimgate.clock import FrozenClock
from esimgate.providers.base import (
    LogicalError,
    LogicalReason,
    OrderRequest,
    ProviderNotice,
    WebhookReceiver,
)
from esimgate.providers.registry import AdapterConfig
from esimgate.providers.simplifytrip.adapter import BASE_URL, SimplifyTripProvider
from esimgate.providers.simplifytrip.client import SimplifyTripClient
from tests.fakes.simplifytrip import API_KEY, CHECKSUM_KEY, SECRET_KEY, make_app

TRACK_ID = "06c08ae1-bfac-4f77-1213-a92f53bb15dd"
ICCID = "89812003916820391469"
IP = "203.0.113.7"


def _sample() -> dict[str, Any]:
    """The documented envelope (doc §6)."""
    return {
        "id": "6740ce7f9d042322159bc6401",
        "type": "PURCHASE_ORDER_SUCCESS",
        "sentDate": "2024-11-24T17:42:31.424Z",
        "createdAt": "2024-11-24T17:42:31.424Z",
        "mode": "TEST_MODE",
        "data": {
            "orderId": "3248417841",
            "trackId": TRACK_ID,
            "status": "SUCCESS",
            "items": [
                {
                    "subOrderId": "674362a97cbd7ef05bc12786",
                    "subTrackId": "62137526-5b53-475f-4333-4c1e83e13a28",
                    "sku": "EAS5XY01GB04DPY",
                    "quantity": 1,
                    "type": "eSIM",
                    "status": "SUCCESS",
                    "eSims": [
                        {
                            "qrCodeContent": "LPA:1$SECSMSMINIAPP.EASTCOMPEACE.COM$502F97EF",
                            "iccid": ICCID,
                            "smdpAddress": "SECSMSMINIAPP.EASTCOMPEACE.COM",
                            "activationCode": "502F97EF",
                        }
                    ],
                }
            ],
        },
    }


def _flat(value: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(inner, f"{path}_{key}" if path else key, out)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _flat(inner, f"{path}_{index}" if path else str(index), out)
    elif isinstance(value, bool):
        out[path] = "true" if value else "false"
    elif value is None:
        out[path] = "null"
    else:
        out[path] = str(value)


def _signed(payload: dict[str, Any], key: str = CHECKSUM_KEY) -> tuple[dict[str, str], bytes]:
    """Headers (lower-case, as the endpoint passes them) and raw body of a delivery."""
    flat: dict[str, str] = {}
    _flat(payload, "", flat)
    text = "&".join(f"{k}={flat[k]}" for k in sorted(flat))
    digest = hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "x-simplify-trip-signature": digest}
    return headers, json.dumps(payload).encode()


@pytest.fixture
async def provider() -> AsyncIterator[SimplifyTripProvider]:
    app, _ = make_app()
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
    )
    client = SimplifyTripClient(
        http, api_key=API_KEY, secret_key=SECRET_KEY, checksum_key=CHECKSUM_KEY
    )
    adapter = SimplifyTripProvider(client)
    yield adapter
    await adapter.aclose()


def _refused(provider: SimplifyTripProvider, headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(LogicalError) as caught:
        provider.parse_webhook(headers, body, IP)
    assert caught.value.reason is LogicalReason.REJECTED


def test_genuine_notification(provider: SimplifyTripProvider) -> None:
    assert isinstance(provider, WebhookReceiver)
    headers, body = _signed(_sample())
    assert provider.parse_webhook(headers, body, IP) == ProviderNotice(
        event_id="6740ce7f9d042322159bc6401",
        kind="PURCHASE_ORDER_SUCCESS",
        reference=TRACK_ID,
        iccid=ICCID,
    )


async def test_fake_delivery() -> None:
    """What the fake upstream delivers for a fulfilled order parses to that order."""
    app, state = make_app()
    transport = httpx.ASGITransport(app=app)
    client = SimplifyTripClient(
        httpx.AsyncClient(transport=transport, base_url=BASE_URL),
        api_key=API_KEY,
        secret_key=SECRET_KEY,
        checksum_key=CHECKSUM_KEY,
    )
    adapter = SimplifyTripProvider(client)
    try:
        await adapter.create_order(OrderRequest("ord-1", "E23XY06GB08DFX", 1))
        order = state.fulfil("ord-1")
        headers, body = state.webhook("ord-1")
        lower = {k.lower(): v for k, v in headers.items()}
        notice = adapter.parse_webhook(lower, body, IP)
    finally:
        await adapter.aclose()
    assert notice.kind == "PURCHASE_ORDER_SUCCESS"
    assert notice.reference == "ord-1"
    assert notice.iccid == order.esims[0].iccid


def test_tampered_body(provider: SimplifyTripProvider) -> None:
    headers, body = _signed(_sample())
    _refused(provider, headers, body.replace(TRACK_ID.encode(), b"someone-elses-order"))
    _refused(provider, headers, body.replace(b"PURCHASE_ORDER_SUCCESS", b"PURCHASE_ORDER_FAILED"))


def test_wrong_secret(provider: SimplifyTripProvider) -> None:
    headers, body = _signed(_sample(), key="ck_test_other")
    _refused(provider, headers, body)


def test_missing_or_garbled_signature(provider: SimplifyTripProvider) -> None:
    headers, body = _signed(_sample())
    _refused(provider, {"content-type": "application/json"}, body)
    _refused(provider, {**headers, "x-simplify-trip-signature": ""}, body)
    _refused(provider, {**headers, "x-simplify-trip-signature": "0" * 64}, body)


def test_unparseable_bodies(provider: SimplifyTripProvider) -> None:
    headers, _ = _signed(_sample())
    _refused(provider, headers, b"not json")
    _refused(provider, headers, b"")
    # Signed correctly, but not a webhook envelope (no type; a list).
    no_type = _sample()
    del no_type["type"]
    _refused(provider, *_signed(no_type))
    raw_list = json.dumps([1, 2]).encode()
    _refused(provider, headers, raw_list)


async def test_empty_secret_refuses_everything() -> None:
    client = SimplifyTripClient(
        httpx.AsyncClient(base_url=BASE_URL),
        api_key=API_KEY,
        secret_key=SECRET_KEY,
        checksum_key=CHECKSUM_KEY,
    )
    adapter = SimplifyTripProvider(client, webhook_secret="")
    headers, body = _signed(_sample(), key="")
    try:
        _refused(adapter, headers, body)
    finally:
        await adapter.aclose()


def test_duplicate_deliveries_share_event_id(provider: SimplifyTripProvider) -> None:
    headers, body = _signed(_sample())
    first = provider.parse_webhook(headers, body, IP)
    again = provider.parse_webhook(headers, body, "198.51.100.9")
    # A resend serialised differently still carries the same body id.
    resend_body = json.dumps(_sample(), indent=2).encode()
    resend = provider.parse_webhook(headers, resend_body, IP)
    assert first.event_id == again.event_id == resend.event_id == "6740ce7f9d042322159bc6401"


def test_event_id_falls_back_to_body_hash(provider: SimplifyTripProvider) -> None:
    payload = _sample()
    del payload["id"]
    headers, body = _signed(payload)
    first = provider.parse_webhook(headers, body, IP)
    second = provider.parse_webhook(headers, body, IP)
    assert first.event_id == second.event_id == hashlib.sha256(body).hexdigest()


def test_undocumented_event_is_accepted(provider: SimplifyTripProvider) -> None:
    payload = {
        "id": 123456789,
        "type": "ESIM_STATUS_CHANGED",
        "mode": "TEST_MODE",
        "data": {"iccid": ICCID, "status": "ACTIVE"},
    }
    notice = provider.parse_webhook(*_signed(payload), IP)
    assert notice == ProviderNotice(
        event_id="123456789", kind="ESIM_STATUS_CHANGED", reference=None, iccid=ICCID
    )


def test_non_iccid_values_are_dropped(provider: SimplifyTripProvider) -> None:
    payload = _sample()
    payload["data"]["items"][0]["eSims"][0]["iccid"] = "not-an-iccid"
    notice = provider.parse_webhook(*_signed(payload), IP)
    assert notice.iccid is None
    assert notice.reference == TRACK_ID


def test_from_config_reads_checksum_key() -> None:
    config = AdapterConfig(
        name="st",
        base_url=None,
        credentials={"apiKey": API_KEY, "secretKey": SECRET_KEY, "checksumKey": "ck_test_cfg"},
        clock=FrozenClock(datetime(2025, 5, 14, tzinfo=UTC)),
        sessions=None,  # type: ignore[arg-type]
    )
    adapter = SimplifyTripProvider.from_config(config)
    headers, body = _signed(_sample(), key="ck_test_cfg")
    assert adapter.parse_webhook(headers, body, IP).reference == TRACK_ID
    _refused(adapter, *_signed(_sample()))
