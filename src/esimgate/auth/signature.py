"""The RT-* HMAC request signature: pure functions, no I/O."""

from __future__ import annotations

import hashlib
import hmac
import re

REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"[0-9]{13}")
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


def signing_bytes(timestamp: str, request_id: str, access_code: str, body: bytes) -> bytes:
    """Timestamp + RequestID + AccessCode + raw body, as the client signs them."""
    return (timestamp + request_id + access_code).encode("utf-8") + body


def sign(secret: str, timestamp: str, request_id: str, access_code: str, body: bytes) -> str:
    """The RT-Signature value (upper-case hex, as the documents show it)."""
    message = signing_bytes(timestamp, request_id, access_code, body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest().upper()


def verify(
    secret: str, timestamp: str, request_id: str, access_code: str, body: bytes, signature: str
) -> bool:
    """Constant-time check of a presented signature; malformed input is simply False."""
    if not SIGNATURE.fullmatch(signature):
        return False
    expected = sign(secret, timestamp, request_id, access_code, body)
    return hmac.compare_digest(expected.encode("ascii"), signature.upper().encode("ascii"))


def is_request_id(value: str) -> bool:
    """A canonical, lower-case UUID v4."""
    return REQUEST_ID.fullmatch(value) is not None


def parse_timestamp_ms(value: str) -> int | None:
    """A 13-digit decimal millisecond timestamp, or None."""
    return int(value) if TIMESTAMP.fullmatch(value) else None
