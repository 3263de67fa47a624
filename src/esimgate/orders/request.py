"""Parsing order bodies by hand: the signature covers the raw bytes, and every bad input must
become a precise 4xx, never a framework 422 or a 500."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from esimgate.errors import InvalidParameter, MissingFields

MAX_IDEMPOTENCY_KEY = 200


def parse_object(body: bytes) -> dict[str, Any]:
    """A JSON object; numbers stay exact (Decimal), never binary floats."""
    if not body.strip():
        raise MissingFields(detail="The request body is empty")
    try:
        value = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidParameter("Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidParameter("Request body must be a JSON object")
    with_nul = sorted(str(name) for name, item in value.items() if _holds_nul([name, item]))
    if with_nul:
        raise InvalidParameter(
            f"Invalid parameter: {', '.join(with_nul)}",
            detail="text must not contain the NUL character (U+0000)",
        )
    return value


def _holds_nul(value: Any) -> bool:
    """Whether any string in a decoded JSON value (keys included) holds U+0000, which
    PostgreSQL text cannot store or compare (iterative: JSON may nest deeper than the stack)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def required_string(data: dict[str, Any], name: str, max_length: int = 128) -> str:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MissingFields(f"Missing required field: {name}", details={"missing": [name]})
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidParameter(f"Invalid parameter: {name}", detail=f"{name} must be a string")
    return value.strip()


def optional_string(data: dict[str, Any], name: str, max_length: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidParameter(
            f"Invalid parameter: {name}",
            detail=f"{name} must be a string of at most {max_length} characters",
        )
    return value


def quantity(data: dict[str, Any]) -> int:
    value = data.get("quantity", 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
        raise InvalidParameter(
            "Invalid parameter: quantity", detail="quantity must be an integer from 1 to 10"
        )
    return value


def price_guard(data: dict[str, Any]) -> Decimal | None:
    """The optional ``price``: a JSON number. Anything else is refused before any work."""
    if "price" not in data or data["price"] is None:
        return None
    value = data["price"]
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise InvalidParameter("Invalid parameter: price", detail="price must be a JSON number")
    price = Decimal(value)
    if not price.is_finite() or price < 0 or price > Decimal("1e9"):
        raise InvalidParameter("Invalid parameter: price", detail="price is out of range")
    return price


def callback_url(data: dict[str, Any]) -> str | None:
    value = optional_string(data, "callbackUrl", 2000)
    if value is not None and not value.startswith(("https://", "http://")):
        raise InvalidParameter(
            "Invalid parameter: callbackUrl", detail="callbackUrl must be an http(s) URL"
        )
    return value


def idempotency_key(data: dict[str, Any], header: str | None) -> str | None:
    key = optional_string(data, "idempotency_key", MAX_IDEMPOTENCY_KEY)
    if key is None and header is not None:
        key = header
        if len(key) > MAX_IDEMPOTENCY_KEY:
            raise InvalidParameter(
                "Invalid parameter: Idempotency-Key", detail="at most 200 characters"
            )
    if key is not None and not key.strip():
        raise InvalidParameter("Invalid parameter: idempotency_key", detail="must not be empty")
    return key


def fingerprint(data: dict[str, Any]) -> str:
    """What "the same body" means for an idempotency key: every field but the key itself."""
    meaningful = {k: v for k, v in data.items() if k != "idempotency_key"}
    canonical = json.dumps(meaningful, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OrderBody:
    package_code: str
    quantity: int
    price: Decimal | None
    callback_url: str | None
    recurring: bool
    idempotency_key: str | None
    fingerprint: str


def parse_order(body: bytes, idempotency_header: str | None) -> OrderBody:
    data = parse_object(body)
    recurring = data.get("recurring", False)
    if recurring is None:
        recurring = False
    if not isinstance(recurring, bool):
        raise InvalidParameter("Invalid parameter: recurring", detail="recurring must be boolean")
    # packageName, duration and flagUrl are legacy fields: accepted and ignored.
    return OrderBody(
        package_code=required_string(data, "packageCode"),
        quantity=quantity(data),
        price=price_guard(data),
        callback_url=callback_url(data),
        recurring=recurring,
        idempotency_key=idempotency_key(data, idempotency_header),
        fingerprint=fingerprint(data),
    )
