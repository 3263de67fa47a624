"""Airalo inbound notifications: ``airalo-signature`` (HMAC-SHA512 with the API secret, doc §6)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from esimgate.clock import FrozenClock
from esimgate.providers.airalo.adapter import AiraloProvider
from esimgate.providers.airalo.client import PRODUCTION_URL, AiraloClient
from esimgate.providers.base import (
    Capability,
    LogicalError,
    LogicalReason,
    ProviderNotice,
    WebhookReceiver,
)
from esimgate.providers.registry import AdapterConfig
from tests.providers.airalo.test_adapter import NOW

SECRET = "client-secret-example"
IP = "203.0.113.7"

# Doc §6, verbatim payloads; §5.3 reconstructed async-order payloads.
LOW_DATA = {
    "level": "3days",
    "package_name": "bonbon-7gb-10days",
    "remaining_percentage": 43,
    "iccid": "87123123456889019",
}
CREDIT = {"message": "Surpassed 80% of the credit limit balance", "remaining": 225.35}
ORDER_DONE = {
    "data": {
        "id": 583748,
        "code": "20250415-583748",
        "package_id": "uki-mobile-15days-2gb",
        "quantity": 1,
        "type": "sim",
        "description": "ord_123",
        "price": 7.5,
        "net_price": 1.6,
        "currency": "USD",
        "sims": [
            {
                "iccid": "8944465400003573254",
                "lpa": "RSP-3088.IDEMIA.IO",
                "matching_id": "ABCDE",
                "qrcode": "LPA:1$RSP-3088.IDEMIA.IO$ABCDE",
            }
        ],
    },
    "meta": {"message": "success"},
    "request_id": "3NhR3gKmqCWK7IWppurpDX3Cg",
}
ORDER_FAILED = {
    "request_id": "3NhR3gKmqCWK7IWppurpDX3Cg",
    "reason": "The requested eSIM package is invalid or it is currently out of stock.",
}


def raw_signature(body: bytes, secret: str = SECRET) -> str:
    """Signature over the exact bytes sent (the docs' raw-body verification sample)."""
    return hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


def sdk_signature(payload: dict[str, Any], secret: str = SECRET) -> str:
    """Signature over the SDK canonical form: compact JSON in key order, every "/" as "\\/"."""
    signed = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/")
    return hmac.new(secret.encode(), signed.encode(), hashlib.sha512).hexdigest()


def signed(payload: dict[str, Any], secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    """A delivery as Python's ``json.dumps`` sends it, signed over the raw body."""
    body = json.dumps(payload).encode()
    return {
        "content-type": "application/json",
        "airalo-signature": raw_signature(body, secret),
    }, body


@pytest.fixture
def adapter() -> AiraloProvider:
    clock = FrozenClock(NOW)
    http = httpx.AsyncClient(base_url=PRODUCTION_URL)
    client = AiraloClient(http, "client-id-example", SECRET, clock=clock)
    return AiraloProvider(client, clock=clock, webhook_secret=SECRET)


def refused(adapter: AiraloProvider, headers: dict[str, str], body: bytes) -> LogicalError:
    with pytest.raises(LogicalError) as caught:
        adapter.parse_webhook(headers, body, IP)
    assert caught.value.reason is LogicalReason.REJECTED
    return caught.value


def test_adapter_receives_webhooks(adapter: AiraloProvider) -> None:
    assert isinstance(adapter, WebhookReceiver)
    assert Capability.WEBHOOKS in adapter.capabilities


def test_low_data_notification(adapter: AiraloProvider) -> None:
    headers, body = signed(LOW_DATA)
    notice = adapter.parse_webhook(headers, body, IP)
    assert notice == ProviderNotice(
        event_id=notice.event_id,
        kind="low_data_notification",
        reference=None,
        iccid="87123123456889019",
    )
    assert len(notice.event_id) == 64


def test_credit_limit_notification_signed_in_sdk_form(adapter: AiraloProvider) -> None:
    body = json.dumps(CREDIT, indent=2).encode()  # bytes differ from what was signed
    notice = adapter.parse_webhook({"airalo-signature": sdk_signature(CREDIT)}, body, IP)
    assert notice.kind == "credit_limit_notification"
    assert notice.reference is None and notice.iccid is None


def test_async_order_result_carries_our_reference(adapter: AiraloProvider) -> None:
    body = json.dumps(ORDER_DONE).encode()
    notice = adapter.parse_webhook({"airalo-signature": sdk_signature(ORDER_DONE)}, body, IP)
    assert notice.kind == "async_order_notification"
    assert notice.reference == "ord_123"
    assert notice.iccid == "8944465400003573254"

    headers, body = signed(ORDER_FAILED)
    failed = adapter.parse_webhook(headers, body, IP)
    assert failed.kind == "async_order_notification"
    assert failed.reference is None and failed.iccid is None
    assert failed.event_id != notice.event_id


def test_numeric_iccid_is_a_string(adapter: AiraloProvider) -> None:
    headers, body = signed({**LOW_DATA, "iccid": 87123123456889019})
    assert adapter.parse_webhook(headers, body, IP).iccid == "87123123456889019"


def test_tampered_body_is_refused(adapter: AiraloProvider) -> None:
    headers, body = signed(LOW_DATA)
    tampered = body.replace(b"87123123456889019", b"87123123456889018")
    assert tampered != body
    refused(adapter, headers, tampered)
    sdk_headers = {"airalo-signature": sdk_signature(ORDER_DONE)}
    forged = json.dumps({**ORDER_DONE, "data": {**ORDER_DONE["data"], "description": "x"}})
    refused(adapter, sdk_headers, forged.encode())


def test_wrong_secret_is_refused(adapter: AiraloProvider) -> None:
    headers, body = signed(LOW_DATA, secret="someone-else")
    refused(adapter, headers, body)
    refused(adapter, {"airalo-signature": sdk_signature(CREDIT, "x")}, json.dumps(CREDIT).encode())


def test_missing_or_empty_signature_is_refused(adapter: AiraloProvider) -> None:
    _, body = signed(LOW_DATA)
    error = refused(adapter, {"content-type": "application/json"}, body)
    assert "airalo-signature" in error.message
    refused(adapter, {"airalo-signature": ""}, body)
    refused(adapter, {"airalo-signature": "not-hex"}, body)


def test_no_secret_refuses_everything() -> None:
    clock = FrozenClock(NOW)
    client = AiraloClient(httpx.AsyncClient(base_url=PRODUCTION_URL), "id", SECRET, clock=clock)
    unconfigured = AiraloProvider(client, clock=clock)
    headers, body = signed(LOW_DATA)
    refused(unconfigured, headers, body)
    headers, body = signed(LOW_DATA, secret="")
    refused(unconfigured, headers, body)


def test_unparseable_bodies_are_refused(adapter: AiraloProvider) -> None:
    for body in (b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"", b"[" * 100_000):
        refused(adapter, {"airalo-signature": raw_signature(body)}, body)


def test_duplicate_deliveries_share_an_event_id(adapter: AiraloProvider) -> None:
    headers, body = signed(LOW_DATA)
    first = adapter.parse_webhook(headers, body, IP)
    again = adapter.parse_webhook(headers, body, IP)
    assert again == first
    # A redelivery re-serialised differently (compact, other key order) is still the same event.
    compact = json.dumps(dict(reversed(LOW_DATA.items())), separators=(",", ":")).encode()
    resent = adapter.parse_webhook({"airalo-signature": raw_signature(compact)}, compact, IP)
    assert resent.event_id == first.event_id
    # A different notification is a different event.
    headers, body = signed({**LOW_DATA, "level": "1days"})
    assert adapter.parse_webhook(headers, body, IP).event_id != first.event_id


def test_from_config_signs_with_the_api_secret() -> None:
    clock = FrozenClock(NOW)

    def build(credentials: dict[str, str]) -> AiraloProvider:
        config = AdapterConfig("airalo-main", None, credentials, clock, None)  # type: ignore[arg-type]
        return AiraloProvider.from_config(config)

    headers, body = signed(LOW_DATA)
    plain = build({"client_id": "id", "client_secret": SECRET})
    assert plain.parse_webhook(headers, body, IP).iccid == "87123123456889019"
    override = build({"client_id": "id", "client_secret": SECRET, "webhook_secret": "hook"})
    refused(override, headers, body)
    headers, body = signed(LOW_DATA, secret="hook")
    assert override.parse_webhook(headers, body, IP).kind == "low_data_notification"
