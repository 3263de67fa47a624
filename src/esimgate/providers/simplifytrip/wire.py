"""SimplifyTrip Merchant Open API v1: the wire shapes esimgate uses, and the signature scheme.

Built from /work/shared/providers/simplifytrip.md. Several shapes there are *reconstructed* or
**(unverified)** (product item body, price/currency names, order-details items, cancel response),
so every model is lenient: unknown fields are ignored, numbers may arrive as strings, booleans as
``"true"``/``"false"``, and optional fields may be missing or ``null``. JSON is parsed with
:func:`loads`, which keeps every non-integer number as an exact :class:`~decimal.Decimal`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


# --- errors (every 4xx/5xx) -------------------------------------------------------------------


class ErrorBody(_Wire):
    """``{timestamp, statusCode, errorCode, message}``; ``errorMessage``/``msg`` tolerated."""

    status_code: int | None = Field(default=None, alias="statusCode")
    error_code: str | None = Field(
        default=None, validation_alias=AliasChoices("errorCode", "error_code", "code")
    )
    message: str | None = Field(
        default=None, validation_alias=AliasChoices("message", "errorMessage", "errorMsg", "msg")
    )


# --- products (GET /products) -----------------------------------------------------------------


class LocalisedName(_Wire):
    en: str | None = None
    vi: str | None = None


class WireCountry(_Wire):
    """(unverified) A covered country, if the catalogue ever lists them explicitly."""

    code: str | None = Field(
        default=None, validation_alias=AliasChoices("code", "countryCode", "isoCode", "iso2")
    )
    name: str | None = None


class Sku(_Wire):
    sku: str
    name: LocalisedName | None = None
    package: str | None = None  # FIXED | DAILY
    days: int | None = None
    data: str | None = None  # display string: "6GB"
    apn: str | None = None
    hotspot: bool | None = Field(default=None, validation_alias=AliasChoices("hotsPot", "hotspot"))
    throttle_speed: str | None = Field(default=None, alias="throttleSpeed")
    sms_call: str | None = Field(default=None, alias="smsCall")
    price: Decimal | None = None  # (unverified) field name and unit
    currency: str | None = None  # (unverified)


class Product(_Wire):
    spu: str
    name: LocalisedName | None = None
    type: str | None = None  # eSIM | SIM
    currency: str | None = None  # (unverified)
    countries: list[WireCountry] = Field(default_factory=list)  # (unverified)
    skus: list[Sku] = Field(default_factory=list)


class ProductPage(_Wire):
    total: int
    skip: int = 0
    take: int = 0
    items: list[Product]


# --- orders -----------------------------------------------------------------------------------


class OrderItemRequest(_Wire):
    sub_track_id: str = Field(alias="subTrackId")
    sku: str
    quantity: int


class CreateOrderRequest(_Wire):
    track_id: str = Field(alias="trackId")
    items: list[OrderItemRequest]


class WireEsim(_Wire):
    iccid: str
    qr_code_content: str | None = Field(default=None, alias="qrCodeContent")
    qr_code_img: str | None = Field(default=None, alias="qrCodeImg")
    smdp_address: str | None = Field(default=None, alias="smdpAddress")
    activation_code: str | None = Field(default=None, alias="activationCode")
    plan_apn: str | None = Field(default=None, alias="planAPN")


class OrderItem(_Wire):
    sub_order_id: str | None = Field(default=None, alias="subOrderId")
    sub_track_id: str | None = Field(default=None, alias="subTrackId")
    sku: str | None = None
    quantity: int | None = None
    type: str | None = None
    status: str | None = None
    esims: list[WireEsim] = Field(
        default_factory=list, validation_alias=AliasChoices("eSims", "esims", "eSIMs")
    )


class CreateOrderResponse(_Wire):
    success: bool | None = None
    order_id: str = Field(alias="orderId", coerce_numbers_to_str=True)
    track_id: str | None = Field(default=None, alias="trackId")
    items: list[OrderItem] = Field(default_factory=list)


class OrderDetails(_Wire):
    id: str = Field(validation_alias=AliasChoices("id", "orderId"), coerce_numbers_to_str=True)
    track_id: str | None = Field(default=None, alias="trackId")
    status: str | None = None
    error: str | None = None
    total: Decimal | None = None
    items: list[OrderItem] = Field(default_factory=list)


class CancelOrderResponse(_Wire):
    id: str | None = Field(
        default=None, validation_alias=AliasChoices("id", "orderId"), coerce_numbers_to_str=True
    )
    status: str | None = None
    reason: str | None = None


# --- eSIM information (GET /products/esim/:iccid), and physical SIM information
# (GET /products/sim/:iccid, assumed to be the same shape: doc §5.7) -------------------------


class ActivityLog(_Wire):
    eid: str | None = None
    record_time: str | None = Field(default=None, alias="recordTime")
    status: str | None = None


class UsageInfo(_Wire):
    used_date: str | None = Field(default=None, alias="usedDate")
    usage_amt: int | None = Field(default=None, alias="usageAmt")


class SimStatus(_Wire):
    plan_start_time: str | None = Field(default=None, alias="planStartTime")
    plan_end_time: str | None = Field(default=None, alias="planEndTime")
    remaining_days: int | None = Field(default=None, alias="remainingDays")
    used_traffic: int | None = Field(default=None, alias="usedTraffic")
    plan_status: str | None = Field(default=None, alias="planStatus")


class EsimOrderInfo(_Wire):
    order_id: str | None = Field(default=None, alias="orderId", coerce_numbers_to_str=True)
    track_id: str | None = Field(default=None, alias="trackId")


class EsimInfo(_Wire):
    iccid: str
    activity_logs: list[ActivityLog] = Field(default_factory=list, alias="activityLogs")
    usage_info_list: list[UsageInfo] = Field(default_factory=list, alias="usageInfoList")
    sim_status: SimStatus = Field(default_factory=SimStatus, alias="simStatus")
    order_info: EsimOrderInfo | None = Field(default=None, alias="orderInfo")
    product_info: Sku | None = Field(default=None, alias="productInfo")


# --- webhooks (doc §6) --------------------------------------------------------------------------


class WebhookEsim(_Wire):
    iccid: str | None = Field(default=None, coerce_numbers_to_str=True)


class WebhookItem(_Wire):
    sub_track_id: str | None = Field(default=None, alias="subTrackId")
    esims: list[WebhookEsim] = Field(
        default_factory=list, validation_alias=AliasChoices("eSims", "esims", "eSIMs")
    )


class WebhookData(_Wire):
    """The ``data`` of a delivery. Only ``PURCHASE_ORDER_SUCCESS`` is documented; other events
    (unverified) may name an eSIM directly, hence the top-level ``iccid``."""

    order_id: str | None = Field(default=None, alias="orderId", coerce_numbers_to_str=True)
    track_id: str | None = Field(default=None, alias="trackId", coerce_numbers_to_str=True)
    iccid: str | None = Field(default=None, coerce_numbers_to_str=True)
    status: str | None = None
    items: list[WebhookItem] = Field(default_factory=list)


class Webhook(_Wire):
    """``{id, type, sentDate, createdAt, mode, data}`` (envelope verbatim from the docs)."""

    id: str | None = Field(default=None, coerce_numbers_to_str=True)
    type: str
    mode: str | None = None
    data: WebhookData = Field(default_factory=WebhookData)


# --- JSON and the signature (docs "Verify data with signature") -------------------------------


class _Number(str):
    """A JSON number kept as its exact source text (for signing) — see :func:`loads_raw`."""

    __slots__ = ()


def loads(raw: bytes | str) -> Any:
    """Parse JSON with exact decimals: no binary float ever appears."""
    return json.loads(raw, parse_float=Decimal)


def loads_raw(raw: bytes | str) -> Any:
    """Parse JSON keeping numbers as their source text, so a signature sees what was sent."""
    return json.loads(raw, parse_float=_Number, parse_int=_Number)


def _render(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int | Decimal):
        return str(value)
    raise TypeError(f"cannot sign a {type(value).__name__}")


def _flatten(value: Any, prefix: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}_{key}" if prefix else str(key))
    elif isinstance(value, list | tuple):
        for index, inner in enumerate(value):
            yield from _flatten(inner, f"{prefix}_{index}" if prefix else str(index))
    else:
        yield prefix, _render(value)


def canonical(payload: Any) -> str:
    """The signed text: nested keys flattened with ``_`` (array indexes as segments), sorted by
    code point, joined ``k=v&…``; numbers as JSON text, booleans ``true``/``false``, ``null``,
    strings raw, empty objects/arrays contribute nothing. The docs leave these details open
    (doc §2.2, unverified): keep this the single place to change once checked with the vendor's
    Signature Generator."""
    return "&".join(f"{key}={value}" for key, value in sorted(_flatten(payload, "")))


def sign(payload: Any, checksum_key: str) -> str:
    """``X-Signature`` / ``X-Simplify-Trip-Signature``: lower-case hex HMAC-SHA256."""
    message = canonical(payload).encode()
    return hmac.new(checksum_key.encode(), message, hashlib.sha256).hexdigest()
