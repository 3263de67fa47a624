"""esimfly Business API wire shapes (as an upstream), tolerant of its documented quirks.

See /work/shared/providers/esimfly-upstream.md. The quirks handled here:

* camelCase and snake_case for the same field (``totalPages``/``total_pages``,
  ``totalVolume``/``total_volume``, ``orderReference``/``order_reference``…);
* booleans sent as strings (``"true"``), numbers sent as strings (``"2.72"``);
* money in the account currency, USD decimals or IQD integers: parsed as :class:`~decimal.Decimal`
  (the client decodes JSON with ``parse_float=Decimal``, so no binary float is ever involved);
* envelopes that differ per endpoint (``data`` vs top level, ``order``), error text in ``error``
  or ``message``, and usage errors without a ``success`` key.

Every model ignores unknown fields: esimfly adds fields in place.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field


def _boolish(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().casefold()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no", ""):
            return False
    return value


def _decimalish(value: Any) -> Any:
    if isinstance(value, float):  # only when decoded without parse_float=Decimal
        return Decimal(repr(value))
    if isinstance(value, str):
        return Decimal(value.strip())
    return value


def _textish(value: Any) -> Any:
    # ICCIDs and ids may come as JSON numbers; keep them as text (leading zeros are lost upstream).
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | Decimal):
        return str(value)
    return value


Bool = Annotated[bool, BeforeValidator(_boolish)]
Dec = Annotated[Decimal, BeforeValidator(_decimalish)]
Text = Annotated[str, BeforeValidator(_textish)]


def _alias(*names: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(*names))


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


# --- envelopes ---------------------------------------------------------------------------------


class ErrorBody(Wire):
    """Any error body: ``{"success":false,"error","code","message","details"}`` or the usage
    endpoint's ``{"error","message"}``."""

    success: Bool | None = None
    error: Text | None = None
    message: Text | None = None
    code: Text | None = None
    details: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        parts = [p for p in (self.error, self.message) if p]
        return ": ".join(dict.fromkeys(parts)) or "no error text"


class Pagination(Wire):
    page: int | None = None
    limit: int | None = None
    total: int | None = None
    total_pages: int | None = _alias("total_pages", "totalPages")


# --- catalogue ---------------------------------------------------------------------------------


class Operator(Wire):
    operator_name: Text | None = _alias("operatorName", "operator_name")
    network_type: Text | None = _alias("networkType", "network_type")


class Location(Wire):
    location_name: Text | None = _alias("locationName", "location_name")
    location_logo: Text | None = _alias("locationLogo", "location_logo")
    location_code: Text | None = _alias("locationCode", "location_code", "country_iso2")
    operator_list: list[Operator] = Field(
        default_factory=list, validation_alias=AliasChoices("operatorList", "operator_list")
    )


class PackageNetwork(Wire):
    network_name: Text | None = _alias("network_name", "networkName")
    network_type: Text | None = _alias("network_type", "networkType")
    country_name: Text | None = _alias("country_name", "countryName")
    country_iso2: Text | None = _alias("country_iso2", "countryIso2", "country_code")
    mcc_code: Text | None = _alias("mcc_code", "mcc")
    mnc_code: Text | None = _alias("mnc_code", "mnc")


class Features(Wire):
    voice_minutes: int | None = _alias("voice_minutes", "voiceMinutes")
    sms_count: int | None = _alias("sms_count", "smsCount")
    is_rechargeable: Bool | None = _alias("is_rechargeable", "isRechargeable")


class Package(Wire):
    package_code: Text = Field(validation_alias=AliasChoices("package_code", "packageCode"))
    name: Text = ""
    region: Text | None = None
    type: Text | None = None
    data_amount_gb: Dec | None = _alias("data_amount_gb", "dataAmountGb")
    validity_days: int = Field(
        default=0, validation_alias=AliasChoices("validity_days", "validityDays")
    )
    cost: Dec
    currency: Text
    features: Features | None = None
    is_unlimited: Bool = Field(
        default=False, validation_alias=AliasChoices("is_unlimited", "isUnlimited", "unlimited")
    )
    is_recurring: Bool = Field(
        default=False, validation_alias=AliasChoices("is_recurring", "isRecurring")
    )
    countries: list[Any] = Field(default_factory=list)
    country_codes: list[Text] = Field(
        default_factory=list, validation_alias=AliasChoices("country_codes", "countryCodes")
    )
    flag_url: Text | None = _alias("flag_url", "flagUrl")
    networks: list[PackageNetwork] = Field(default_factory=list)
    location_network_list: list[Location] = Field(
        default_factory=list,
        validation_alias=AliasChoices("locationNetworkList", "location_network_list"),
    )


class PackagePage(Wire):
    packages: list[Package] = Field(default_factory=list)
    pagination: Pagination | None = None


# --- orders ------------------------------------------------------------------------------------


class OrderEsim(Wire):
    iccid: Text | None = None
    esim_id: Text | None = _alias("esimId", "esim_id", "id")
    lpa_string: Text | None = _alias("lpaString", "lpa_string", "lpa")
    status: Text | None = None
    profile_status: Text | None = _alias("profileStatus", "profile_status")
    esim_status: Text | None = _alias("esim_status", "esimStatus")
    is_pending: Bool = Field(
        default=False, validation_alias=AliasChoices("isPending", "is_pending")
    )
    unlimited: Bool | None = None
    total_volume: int | None = _alias("totalVolume", "total_volume")
    total_duration: int | None = _alias("totalDuration", "total_duration")


class OrderCreated(Wire):
    """``POST /esims/order`` success (fields at the top level)."""

    success: Bool | None = None
    message: Text | None = None
    order_reference: Text | None = _alias("orderReference", "order_reference")
    esim_id: Text | None = _alias("esimId", "esim_id")
    status: Text | None = None
    amount: Dec | None = None
    final_price: Dec | None = _alias("final_price", "finalPrice")
    currency: Text | None = None
    lpa_string: Text | None = _alias("lpaString", "lpa_string")
    is_pending: Bool = Field(
        default=False, validation_alias=AliasChoices("isPending", "is_pending")
    )
    duplicate: Bool = False
    esims: list[OrderEsim] = Field(default_factory=list)


class OrderDetail(Wire):
    """``GET /esims/order`` → ``order``."""

    id: Text | None = None
    order_reference: Text | None = _alias("orderReference", "order_reference")
    package_code: Text | None = _alias("packageCode", "package_code")
    status: Text | None = None
    amount: Dec | None = None
    final_price: Dec | None = _alias("finalPrice", "final_price")
    currency: Text | None = None
    esim: OrderEsim | None = None
    esims: list[OrderEsim] = Field(default_factory=list)


class OrderEnvelope(Wire):
    order: OrderDetail


# --- usage and live status ---------------------------------------------------------------------


class UsageEsim(Wire):
    iccid: Text | None = None
    order_id: Text | None = _alias("order_id", "orderId")
    package_name: Text | None = _alias("package_name", "packageName")
    status: Text | None = None


class UsageData(Wire):
    total_mb: Dec | None = _alias("total_mb", "totalMb")
    used_mb: Dec | None = _alias("used_mb", "usedMb")
    remaining_mb: Dec | None = _alias("remaining_mb", "remainingMb")
    is_unlimited: Bool = Field(
        default=False, validation_alias=AliasChoices("is_unlimited", "isUnlimited")
    )


class Validity(Wire):
    days: int | None = None
    activated_at: Text | None = _alias("activated_at", "activatedAt")
    expires_at: Text | None = _alias("expires_at", "expiresAt")


class Usage(Wire):
    esim: UsageEsim
    data: UsageData
    validity: Validity | None = None


class LastNetwork(Wire):
    operator: Text | None = None
    mcc: Text | None = None
    mnc: Text | None = None
    country: Text | None = None
    country_iso2: Text | None = _alias("country_iso2", "countryIso2")
    connection_type: Text | None = _alias("connection_type", "connectionType")


class Device(Wire):
    model: Text | None = None
    imei: Text | None = None


class LiveStatus(Wire):
    """``POST /esims/status`` → ``data``."""

    iccid: Text | None = None
    status: Text | None = None
    esim_status: Text | None = _alias("esim_status", "esimStatus")
    smdp_status: Text | None = _alias("smdp_status", "smdpStatus")
    profile: Text | None = None
    profile_status: Text | None = _alias("profile_status", "profileStatus")
    last_network: LastNetwork | None = _alias("last_network", "lastNetwork")
    device: Device | None = None
    activation_date: Text | None = _alias("activation_date", "activationDate")
    last_usage_date: Text | None = _alias("last_usage_date", "lastUsageDate")
    expiry_date: Text | None = _alias("expiry_date", "expiryDate")


# --- top-ups and cancel ------------------------------------------------------------------------


class TopUpEsimData(Wire):
    new_total_volume_gb: Dec | None = _alias("newTotalVolumeGB", "new_total_volume_gb")
    new_remaining_volume_gb: Dec | None = _alias("newRemainingVolumeGB", "new_remaining_volume_gb")
    expired_time: Text | None = _alias("expiredTime", "expired_time")  # free English text


class TopUpCreated(Wire):
    success: Bool | None = None
    order_reference: Text | None = _alias("orderReference", "order_reference")
    status: Text | None = None
    amount: Dec | None = None
    currency: Text | None = None
    esim_data: TopUpEsimData | None = _alias("esimData", "esim_data")


class CancelData(Wire):
    order_reference: Text | None = _alias("order_reference", "orderReference")
    cancelled_esims: int | None = _alias("cancelled_esims", "cancelledEsims")
    refunded_amount: Dec | None = _alias("refunded_amount", "refundedAmount")
    currency: Text | None = None
