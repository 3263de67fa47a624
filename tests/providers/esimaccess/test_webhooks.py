"""eSIM Access inbound webhooks (/work/shared/providers/esimaccess.md §6): unsigned, so trusted
only when they come from a published sender IP; de-duplicated on ``notifyId``."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from esimgate.clock import FrozenClock
from esimgate.providers.base import (
    LogicalError,
    LogicalReason,
    ProviderNotice,
    WebhookReceiver,
)
from esimgate.providers.esimaccess.adapter import EsimAccessProvider, is_webhook_source
from esimgate.providers.esimaccess.client import EsimAccessClient

SENDER = "18.136.190.97"  # one of the published sender IPs (§6)
HEADERS = {"content-type": "application/json"}

# Verbatim §6 examples.
ORDER_STATUS = (
    b'{ "notifyType": "ORDER_STATUS", "notifyId": "447602ac1e5c4bb4980f786b0c2934d6", '
    b'"eventGenerateTime": "2026-04-22T17:16:34Z", "content": { "orderNo": "B26042217160011", '
    b'"orderStatus": "GOT_RESOURCE", "transactionId": "7544949834056-1-TR_50_30" } }'
)
ESIM_STATUS = (
    b'{ "notifyType": "ESIM_STATUS", "eventGenerateTime": "2025-08-09T00:23:45Z", '
    b'"notifyId": "4038b3dfb1b050bf9f02501df67284f3", "content": { "orderNo": "B25080823490018", '
    b'"esimTranNo": "25080323490020", "transactionId": "e23111e4d07746889c7bce41cf3f1b16", '
    b'"iccid": "89852000263413436720", "esimStatus": "CANCEL", "smdpStatus": "RELEASED" } }'
)
VALIDITY_USAGE = (
    b'{ "notifyType": "VALIDITY_USAGE", "content": { "orderNo": "B23072016497499", '
    b'"transactionId": "Your_txn_id", "iccid": "894310817000000003", "durationUnit": "DAY", '
    b'"totalDuration": 30, "expiredTime": "2024-01-11T08:10:19Z", "remain": 1 } }'
)
CHECK_HEALTH = (
    b'{"notifyType":"CHECK_HEALTH","content":{"orderNo":"1234567890","orderStatus":"Test"}}'
)


@pytest.fixture
def adapter() -> EsimAccessProvider:
    clock = FrozenClock()
    http = httpx.AsyncClient(base_url="https://api.esimaccess.test/api/v1/open")
    return EsimAccessProvider(EsimAccessClient(http, "access", "secret", clock=clock), clock=clock)


def test_adapter_is_a_webhook_receiver(adapter: EsimAccessProvider) -> None:
    assert isinstance(adapter, WebhookReceiver)


def test_order_status_names_our_reference(adapter: EsimAccessProvider) -> None:
    notice = adapter.parse_webhook(HEADERS, ORDER_STATUS, SENDER)
    assert notice == ProviderNotice(
        event_id="447602ac1e5c4bb4980f786b0c2934d6",
        kind="ORDER_STATUS",
        reference="7544949834056-1-TR_50_30",
        iccid=None,
        provider_order_id="B26042217160011",
    )


def test_esim_status_names_reference_and_iccid(adapter: EsimAccessProvider) -> None:
    notice = adapter.parse_webhook(HEADERS, ESIM_STATUS, "3.1.131.226")
    assert notice == ProviderNotice(
        event_id="4038b3dfb1b050bf9f02501df67284f3",
        kind="ESIM_STATUS",
        reference="e23111e4d07746889c7bce41cf3f1b16",
        iccid="89852000263413436720",
        provider_order_id="B25080823490018",
    )


def test_without_notify_id_the_body_hash_is_the_event_id(adapter: EsimAccessProvider) -> None:
    notice = adapter.parse_webhook(HEADERS, VALIDITY_USAGE, SENDER)
    assert notice.event_id == hashlib.sha256(VALIDITY_USAGE).hexdigest()
    assert notice.kind == "VALIDITY_USAGE"
    assert notice.reference == "Your_txn_id" and notice.iccid == "894310817000000003"


def test_duplicate_deliveries_share_the_event_id(adapter: EsimAccessProvider) -> None:
    for body in (ORDER_STATUS, ESIM_STATUS, VALIDITY_USAGE, CHECK_HEALTH):
        first = adapter.parse_webhook(HEADERS, body, SENDER)
        again = adapter.parse_webhook({}, body, "54.254.74.88")
        assert first == again
    # Same event redelivered with a different layout: notifyId still identifies it.
    relaid = json.dumps(json.loads(ESIM_STATUS), separators=(",", ":")).encode()
    assert relaid != ESIM_STATUS
    assert (
        adapter.parse_webhook(HEADERS, relaid, SENDER).event_id
        == adapter.parse_webhook(HEADERS, ESIM_STATUS, SENDER).event_id
    )


def test_health_check_is_accepted_and_concerns_nothing(adapter: EsimAccessProvider) -> None:
    notice = adapter.parse_webhook(HEADERS, CHECK_HEALTH, SENDER)
    assert notice.kind == "CHECK_HEALTH"
    assert notice.reference is None and notice.iccid is None
    assert notice.event_id == hashlib.sha256(CHECK_HEALTH).hexdigest()


def test_numeric_iccid_is_kept_as_a_string(adapter: EsimAccessProvider) -> None:
    body = b'{"notifyType":"ESIM_STATUS","notifyId":"n1","content":{"iccid":8943108170001029631}}'
    assert adapter.parse_webhook(HEADERS, body, SENDER).iccid == "8943108170001029631"


@pytest.mark.parametrize(
    "ip",
    ["203.0.113.7", "127.0.0.1", "", "unknown", "3.1.131.22", "3.1.131.2260", "::1"],
)
def test_wrong_source_ip_is_refused(adapter: EsimAccessProvider, ip: str) -> None:
    with pytest.raises(LogicalError) as caught:
        adapter.parse_webhook(HEADERS, ORDER_STATUS, ip)
    assert caught.value.reason is LogicalReason.REJECTED


def test_headers_cannot_vouch_for_the_source(adapter: EsimAccessProvider) -> None:
    spoofed = {**HEADERS, "x-forwarded-for": SENDER, "x-real-ip": SENDER}
    with pytest.raises(LogicalError):
        adapter.parse_webhook(spoofed, ORDER_STATUS, "203.0.113.7")


def test_ipv4_mapped_sender_is_accepted(adapter: EsimAccessProvider) -> None:
    assert is_webhook_source("::ffff:18.136.19.137")
    assert is_webhook_source(" 18.136.60.197 ")
    assert adapter.parse_webhook(HEADERS, ORDER_STATUS, "::ffff:3.1.131.226").kind == (
        "ORDER_STATUS"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"ORDER_STATUS"',
        b"{}",
        b'{"notifyType": ""}',
        b'{"notifyType": 3, "content": {}}',
        b'{"notifyType": "ORDER_STATUS", "content": []}',
        b'{"notifyType": "ESIM_STATUS", "content": {"iccid": "8' + b"9" * 30 + b'"}}',
    ],
)
def test_unparseable_bodies_are_refused(adapter: EsimAccessProvider, body: bytes) -> None:
    with pytest.raises(LogicalError) as caught:
        adapter.parse_webhook(HEADERS, body, SENDER)
    assert caught.value.reason is LogicalReason.REJECTED


def test_tampered_body_changes_the_notice(adapter: EsimAccessProvider) -> None:
    """Unsigned upstream: tampering cannot be detected from the body itself (only the sender
    address is checked, and esimgate re-queries the API before acting), but a tampered body
    without notifyId never collides with the genuine event's id."""
    tampered = VALIDITY_USAGE.replace(b"Your_txn_id", b"Other_txn_id")
    genuine = adapter.parse_webhook(HEADERS, VALIDITY_USAGE, SENDER)
    forged = adapter.parse_webhook(HEADERS, tampered, SENDER)
    assert forged.event_id != genuine.event_id and forged.reference == "Other_txn_id"
    with pytest.raises(LogicalError):
        adapter.parse_webhook(HEADERS, tampered, "198.51.100.1")
