"""Webhook signatures: esimfly-compatible and Standard Webhooks, checked independently."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from esimgate.webhooks.signing import new_secret, verify_esimfly, webhook_headers

# esimfly-upstream.md section 6: computed test vector.
ESIMFLY_SECRET = "whsec_example"
ESIMFLY_BODY = (
    b'{"event":"esim.provisioned","timestamp":"2026-04-13T10:05:30.000Z","data":'
    b'{"order_reference":"order_1776079539762_hvkrk","iccid":"8981100000012345678"}}'
)
ESIMFLY_SIGNATURE = "sha256=2776c19bf81c4fe1e6c3324511423d7040195429e2629100c53fec6c9bdd50e5"

FIXED_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
BODY = b'{"event":"order.completed","timestamp":"2026-04-13T10:05:30.000Z","data":{"x":"\xc3\xa9"}}'


def _standard_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("webhook-")}


def test_new_secret_shape() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert new_secret() != secret


def test_esimfly_documented_vector() -> None:
    headers = webhook_headers(
        ESIMFLY_SECRET, "wh_1", "esim.provisioned", 1776074730, ESIMFLY_BODY, "1.0"
    )
    assert headers["X-Webhook-Signature"] == ESIMFLY_SIGNATURE


def test_known_answer_computed_independently() -> None:
    webhook_id, timestamp = "msg_2Lh9", 1776074730
    headers = webhook_headers(FIXED_SECRET, webhook_id, "order.completed", timestamp, BODY, "0.1.0")
    esimfly_hex = hmac.new(FIXED_SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    key = bytes(range(32))
    standard = base64.b64encode(
        hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + BODY, hashlib.sha256).digest()
    ).decode()
    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": "esimgate-webhook/0.1.0",
        "X-Webhook-Event": "order.completed",
        "X-Webhook-Id": webhook_id,
        "X-Webhook-Timestamp": "2026-04-13T10:05:30.000Z",
        "X-Webhook-Signature": f"sha256={esimfly_hex}",
        "webhook-id": webhook_id,
        "webhook-timestamp": "1776074730",
        "webhook-signature": f"v1,{standard}",
    }


def test_standard_webhooks_library_verifies() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = webhook_headers(secret, "msg_abc", "esim.activated", now, BODY, "0.1.0")
    payload = Webhook(secret).verify(BODY, _standard_headers(headers))
    assert payload["event"] == "order.completed"

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"order", b"ordex"), _standard_headers(headers))
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, _standard_headers(headers))
    tampered_id = {**_standard_headers(headers), "webhook-id": "msg_other"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, tampered_id)


def test_verify_esimfly() -> None:
    assert verify_esimfly(ESIMFLY_SECRET, ESIMFLY_BODY, ESIMFLY_SIGNATURE)
    secret = new_secret()
    headers = webhook_headers(secret, "msg_1", "esim.depleted", int(time.time()), BODY, "1")
    signature = headers["X-Webhook-Signature"]
    assert verify_esimfly(secret, BODY, signature)
    assert not verify_esimfly(secret, BODY + b" ", signature)
    assert not verify_esimfly(new_secret(), BODY, signature)
    assert not verify_esimfly(secret, BODY, signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    assert not verify_esimfly(secret, BODY, "")
    assert not verify_esimfly(secret, BODY, "sha256=é")


def test_secret_must_be_whsec_base64() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        webhook_headers("plain", "id", "e", 1, BODY, "1")
    with pytest.raises(ValueError, match="base64"):
        webhook_headers("whsec_@@@@", "id", "e", 1, BODY, "1")
