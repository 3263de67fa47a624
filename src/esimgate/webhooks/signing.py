"""Webhook secrets and signature headers.

Every delivery carries two signatures over the same raw body bytes:

* the esimfly-compatible ``X-Webhook-Signature: sha256=<hex>``: lowercase hex
  HMAC-SHA256 keyed with the *whole* secret string (``whsec_…`` prefix included, as esimfly
  does) over the raw body only; ``X-Webhook-Timestamp`` is ISO 8601 (as esimfly sends it) and is
  not signed;
* the Standard Webhooks ``webhook-signature: v1,<base64>``: HMAC-SHA256 keyed with the
  base64-decoded part of the secret over ``"{id}.{unix seconds}.{body}"``, so off-the-shelf
  verifier libraries (``standardwebhooks``, Svix) work.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh webhook secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _standard_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("webhook secret must start with 'whsec_'")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("webhook secret is not valid base64 after 'whsec_'") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def esimfly_signature(secret: str, body: bytes) -> str:
    """``sha256=<lowercase hex HMAC-SHA256(secret string, raw body)>``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def standard_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(base64-decoded secret, "{id}.{timestamp}.{body}")>``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def iso_timestamp(timestamp: int) -> str:
    """Unix seconds as esimfly's ISO 8601 form, e.g. ``2026-04-13T10:05:30.000Z``."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def webhook_headers(
    secret: str,
    webhook_id: str,
    event: str,
    timestamp: int,
    body: bytes,
    version: str,
) -> dict[str, str]:
    """All request headers for one delivery attempt (the id stays the same across retries)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"esimgate-webhook/{version}",
        "X-Webhook-Event": event,
        "X-Webhook-Id": webhook_id,
        "X-Webhook-Timestamp": iso_timestamp(timestamp),
        "X-Webhook-Signature": esimfly_signature(secret, body),
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, webhook_id, timestamp, body),
    }


def verify_esimfly(secret: str, body: bytes, header: str) -> bool:
    """Check an ``X-Webhook-Signature`` header against the raw body, in constant time."""
    expected = esimfly_signature(secret, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))
