"""The eSIM Access wire format: the shapes we send and read, tolerant of its documented drift.

Quirks handled here (docs/providers/esimaccess.md §3, §7): ``errorMsg`` vs ``errorMessage``;
``success`` as a JSON boolean or the string ``"true"``; ``errorCode`` as ``null``, ``"0"`` or a
number; integers (money × 10 000, bytes) sent as JSON numbers or numeric strings; optional
fields missing or ``null``; unknown fields ignored. Money and volumes are parsed exactly: the
client decodes JSON floats as :class:`~decimal.Decimal`, and a non-integral amount is a schema
violation, never silently rounded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field


def _exact_int(value: Any) -> Any:
    """An integer from an int, a numeric string or an integral Decimal; anything else fails."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):  # only if a caller bypassed Decimal decoding
        value = Decimal(repr(value))
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise ValueError(f"not an integer: {value}")
        return int(value)
    raise ValueError(f"not a number: {value!r}")


def _text(value: Any) -> Any:
    """Codes and ids as text even when the upstream sends a JSON number."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | Decimal):
        return str(value)
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0", ""):
            return False
    return value


def parse_time(value: object) -> datetime | None:
    """eSIM Access timestamps ("2024-05-29T18:34:17+0000", "…Z", "…+00:00"), as aware UTC.

    Missing, empty or unparsable values give ``None``: a timestamp is never worth failing a call.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


Int = Annotated[int, BeforeValidator(_exact_int)]
Text = Annotated[str, BeforeValidator(_text)]
Flag = Annotated[bool, BeforeValidator(_flag)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Envelope(_Model):
    """Every response: ``{success, errorCode, errorMsg|errorMessage, obj}``."""

    success: Flag
    error_code: Text | None = Field(default=None, alias="errorCode")
    error_msg: str | None = Field(
        default=None, validation_alias=AliasChoices("errorMsg", "errorMessage")
    )
    obj: Any = None

    @property
    def ok(self) -> bool:
        return self.success and self.error_code in (None, "", "0")


# --- /package/list ---------------------------------------------------------------------------


class Operator(_Model):
    operator_name: str = Field(default="", alias="operatorName")
    network_type: str | None = Field(default=None, alias="networkType")


class LocationNetwork(_Model):
    location_name: str | None = Field(default=None, alias="locationName")
    location_code: str = Field(alias="locationCode")
    operator_list: list[Operator] | None = Field(default=None, alias="operatorList")


class Package(_Model):
    package_code: Text = Field(alias="packageCode")
    slug: str | None = None
    name: str = ""
    price: Int
    currency_code: str = Field(default="USD", alias="currencyCode")
    volume: Int
    sms_status: Int | None = Field(default=None, alias="smsStatus")
    data_type: Int | None = Field(default=None, alias="dataType")
    duration: Int
    duration_unit: str = Field(default="DAY", alias="durationUnit")
    location: str | None = None
    location_code: str | None = Field(default=None, alias="locationCode")
    support_top_up_type: Int | None = Field(default=None, alias="supportTopUpType")
    location_network_list: list[LocationNetwork] | None = Field(
        default=None, alias="locationNetworkList"
    )


class PackageListObj(_Model):
    package_list: list[dict[str, Any]] = Field(default_factory=list, alias="packageList")


# --- /esim/order -----------------------------------------------------------------------------


class OrderObj(_Model):
    order_no: Text = Field(alias="orderNo")
    transaction_id: Text | None = Field(default=None, alias="transactionId")


# --- /esim/query -----------------------------------------------------------------------------


class Esim(_Model):
    esim_tran_no: Text = Field(alias="esimTranNo")
    order_no: Text | None = Field(default=None, alias="orderNo")
    transaction_id: Text | None = Field(default=None, alias="transactionId")
    iccid: Text
    ac: str | None = None
    smdp_status: str | None = Field(default=None, alias="smdpStatus")
    esim_status: str | None = Field(default=None, alias="esimStatus")
    activate_time: str | None = Field(default=None, alias="activateTime")
    expired_time: str | None = Field(default=None, alias="expiredTime")
    total_volume: Int | None = Field(default=None, alias="totalVolume")
    order_usage: Int | None = Field(default=None, alias="orderUsage")


class Pager(_Model):
    page_size: Int | None = Field(default=None, alias="pageSize")
    page_num: Int | None = Field(default=None, alias="pageNum")
    total: Int | None = None


class EsimQueryObj(_Model):
    esim_list: list[Esim] | None = Field(default=None, alias="esimList")
    pager: Pager | None = None


# --- /esim/usage/query -----------------------------------------------------------------------


class Usage(_Model):
    esim_tran_no: Text = Field(alias="esimTranNo")
    data_usage: Int | None = Field(default=None, alias="dataUsage")
    total_data: Int | None = Field(default=None, alias="totalData")
    last_update_time: str | None = Field(default=None, alias="lastUpdateTime")


class UsageObj(_Model):
    esim_usage_list: list[Usage] = Field(default_factory=list, alias="esimUsageList")


# --- /esim/topup -----------------------------------------------------------------------------


class TopUpObj(_Model):
    transaction_id: Text | None = Field(default=None, alias="transactionId")
    top_up_esim_tran_no: Text | None = Field(default=None, alias="topUpEsimTranNo")
    iccid: Text | None = None
    expired_time: str | None = Field(default=None, alias="expiredTime")
    total_volume: Int | None = Field(default=None, alias="totalVolume")
    total_duration: Int | None = Field(default=None, alias="totalDuration")
    order_usage: Int | None = Field(default=None, alias="orderUsage")


# --- /esim/suspend, /esim/unsuspend ----------------------------------------------------------
# Both answer ``obj: {}`` (§5.5), like /esim/cancel; the success envelope is the whole answer,
# so nothing in ``obj`` is read.


# --- /balance/query --------------------------------------------------------------------------


class BalanceObj(_Model):
    """``obj`` of /balance/query (§5.7): ``{"balance": 940000}`` = 94.00, × 10 000 like every
    amount. No currency is documented; ``currencyCode`` is read if it is ever sent."""

    balance: Int
    currency_code: str | None = Field(default=None, alias="currencyCode")
