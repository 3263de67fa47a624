"""The Airalo Partner API v2 wire shapes esimgate reads, tolerant of the documented quirks.

JSON is parsed with ``parse_float=Decimal`` (see :func:`parse_json`), so prices reach these
models as exact decimals; list endpoints send them as strings (``"9.50"``), which Decimal
fields accept too. Integers may arrive as strings (``"quantity": "1"``) and booleans as strings
(``"true"``/``"1"``): pydantic's lax mode coerces both. Unknown fields are ignored, missing ones
default, so a new upstream field never breaks us.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def parse_json(raw: bytes) -> Any:
    """Parse a response body with exact decimals (never binary floats)."""
    return json.loads(raw, parse_float=Decimal)


def parse_timestamp(text: str | None) -> datetime | None:
    """``"YYYY-MM-DD HH:MM:SS"`` (UTC, no zone) or ISO-8601 with an offset; ``None`` if absent or
    unreadable (a display field must never fail a whole response)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


def _none_if_blank(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# --- token ------------------------------------------------------------------------------------


class TokenData(_Wire):
    access_token: str = Field(min_length=1)
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int = 86_400


class TokenResponse(_Wire):
    data: TokenData


# --- catalogue --------------------------------------------------------------------------------


class WirePackage(_Wire):
    id: str = Field(min_length=1)
    type: str = "sim"
    title: str = ""
    amount: Decimal | None = None  # MB (binary); ignored when unlimited
    day: int = 0
    is_unlimited: bool = False
    data: str | None = None
    voice: int | None = None
    text: int | None = None
    price: Decimal | None = None  # recommended retail, USD
    net_price: Decimal | None = None  # our cost, USD

    _blank = field_validator("amount", "voice", "text", "price", "net_price", mode="before")(
        _none_if_blank
    )


class WireCountry(_Wire):
    country_code: str = ""
    title: str = ""


class WireNetworkInfo(_Wire):
    name: str = ""
    types: list[str] = Field(default_factory=list)


class WireCoverage(_Wire):
    name: str = ""
    code: str = ""
    networks: list[WireNetworkInfo] = Field(default_factory=list)


class WireOperator(_Wire):
    id: int | str | None = None
    title: str = ""
    type: str = "local"
    rechargeability: bool = False
    countries: list[WireCountry] = Field(default_factory=list)
    coverages: list[WireCoverage] = Field(default_factory=list)
    packages: list[WirePackage] = Field(default_factory=list)

    @field_validator("rechargeability", mode="before")
    @classmethod
    def _null_is_false(cls, value: Any) -> Any:
        return False if value is None else value


class WireRegion(_Wire):
    """A country or a region (``country_code`` empty) with its operators."""

    slug: str = ""
    country_code: str | None = ""
    title: str = ""
    operators: list[WireOperator] = Field(default_factory=list)


class Pagination(_Wire):
    current_page: int = 1
    last_page: int = 1


class PackagesResponse(_Wire):
    data: list[WireRegion] = Field(default_factory=list)
    meta: Pagination = Field(default_factory=Pagination)

    @field_validator("data", mode="before")
    @classmethod
    def _list_or_index(cls, value: Any) -> Any:
        # Docs warn pages >= 2 may come as an object keyed by index instead of a list.
        if isinstance(value, dict):
            return list(value.values())
        return value


# --- orders -----------------------------------------------------------------------------------


class WireSim(_Wire):
    id: int | str | None = None
    iccid: str = Field(min_length=1)
    lpa: str = ""
    matching_id: str = ""
    qrcode: str = ""
    confirmation_code: str | None = None

    @field_validator("iccid", "confirmation_code", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # Keep leading zeros if a number ever slips through as JSON; digits as text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class WireStatus(_Wire):
    name: str = ""
    slug: str = ""


class WireOrder(_Wire):
    id: int | str
    code: str = ""
    package_id: str = ""
    quantity: int = 1
    type: str = "sim"
    description: str | None = None
    currency: str = "USD"
    price: Decimal | None = None
    net_price: Decimal | None = None
    created_at: str | None = None
    sims: list[WireSim] = Field(default_factory=list)
    status: WireStatus | None = None

    _blank = field_validator("price", "net_price", mode="before")(_none_if_blank)

    @field_validator("status", mode="before")
    @classmethod
    def _status_word(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value, "slug": value.lower()}
        return value

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, value: Any) -> Any:
        return "USD" if value in (None, "") else value


class OrderResponse(_Wire):
    data: WireOrder


class OrdersResponse(_Wire):
    data: list[WireOrder] = Field(default_factory=list)
    meta: Pagination = Field(default_factory=Pagination)

    @field_validator("data", mode="before")
    @classmethod
    def _list_or_index(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return list(value.values())
        return value


class AsyncOrderAccepted(_Wire):
    """``POST /orders-async`` → 202: the request is queued; the order is made later."""

    request_id: str = Field(min_length=1, max_length=128)  # a 25-character nanoid (doc §5.3)
    accepted_at: str | None = None

    @field_validator("request_id", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


class AsyncOrderResponse(_Wire):
    data: AsyncOrderAccepted


class WireTopUpOrder(_Wire):
    id: int | str | None = None
    code: str = ""
    package_id: str = ""
    type: str = "topup"
    description: str | None = None
    currency: str = "USD"
    price: Decimal | None = None
    net_price: Decimal | None = None
    validity: int | None = None
    data: str | None = None

    _blank = field_validator("price", "net_price", "validity", mode="before")(_none_if_blank)

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, value: Any) -> Any:
        return "USD" if value in (None, "") else value


class TopUpResponse(_Wire):
    data: WireTopUpOrder


# --- usage ------------------------------------------------------------------------------------


class WireUsage(_Wire):
    remaining: Decimal | None = None  # MB
    total: Decimal | None = None  # MB
    expired_at: str | None = None
    is_unlimited: bool | None = False
    status: str | None = None

    _blank = field_validator("remaining", "total", mode="before")(_none_if_blank)


class UsageResponse(_Wire):
    data: WireUsage


# --- errors -----------------------------------------------------------------------------------


class ErrorBody(_Wire):
    """Any of the three error shapes: business ``{code, reason}``, validation ``{data: {field:
    message}, meta: {message}}`` and plain ``{message}`` / ``{data: [], meta: {message}}``."""

    code: int | None = None
    reason: str | None = None
    message: str | None = None
    data: Any = None
    meta: dict[str, Any] | None = None

    @field_validator("code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def fields(self) -> dict[str, str]:
        """The validation field → message map (empty when this is not a validation error)."""
        if not isinstance(self.data, dict):
            return {}
        out: dict[str, str] = {}
        for key, value in self.data.items():
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            out[str(key)] = str(value)
        return out

    def text(self) -> str:
        parts = [self.reason, self.message, (self.meta or {}).get("message")]
        parts += [f"{k}: {v}" for k, v in self.fields().items()]
        return "; ".join(str(p) for p in parts if p) or "no error message"
