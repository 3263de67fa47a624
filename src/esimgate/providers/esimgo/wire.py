# ruff: noqa: N815  (field names mirror the upstream's camelCase wire names)
"""eSIM Go v2.5 wire shapes, tolerant of the documented quirks.

* keys are matched case-insensitively (``AllowReassign`` = ``allowReassign``);
* booleans may be strings (``"true"``), numbers may be strings, money is parsed as ``Decimal``
  (the client decodes JSON floats as ``Decimal``, never binary floats);
* ICCIDs may arrive as JSON numbers (callbacks): they are kept as digit strings;
* the catalogue is an object ``{bundles, pageCount, …}`` live, a bare array in the v2.4 schema;
* timestamps are RFC 3339 with nanoseconds, or epoch milliseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _iccid(value: Any) -> Any:
    """An ICCID as text: JSON numbers become their exact digits; strings keep leading zeros."""
    if isinstance(value, bool):
        raise ValueError("an ICCID cannot be a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise ValueError(f"not an ICCID: {value!r}")
        return str(int(value))
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            raise ValueError(f"not an ICCID: {value!r}")
        return text
    return value


def _text(value: Any) -> Any:
    """Ids that some payloads send as numbers (assignment ``id``) as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    return value


Iccid = Annotated[str, BeforeValidator(_iccid)]
Text = Annotated[str, BeforeValidator(_text)]


class Wire(BaseModel):
    """Base of every wire model: unknown fields ignored, field names matched case-insensitively."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _casefold_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = {name.casefold(): name for name in cls.model_fields}
        fixed: dict[str, Any] = {}
        for key, value in data.items():
            name = names.get(str(key).casefold(), str(key))
            if name not in fixed or key == name:  # an exact spelling wins over a variant
                fixed[name] = value
        return fixed


# --- catalogue ----------------------------------------------------------------------------------


class Country(Wire):
    iso: str
    name: str = ""
    region: str = ""


class Allowance(Wire):
    type: str = ""
    service: str = ""
    amount: Decimal | None = None
    unit: str = ""
    unlimited: bool = False


class Bundle(Wire):
    name: str = Field(min_length=1)
    description: str = ""
    countries: list[Country] = []
    dataAmount: Decimal | None = None  # MB, decimal (1000 = 1 GB)
    duration: int = 0  # days
    unlimited: bool = False
    price: Decimal  # our cost, organisation currency
    groups: list[str] = []
    billingType: str | None = None
    allowances: list[Allowance] = []


class CataloguePage(Wire):
    bundles: list[Any] = []  # validated one by one: a bad bundle must not hide the others
    pageCount: int = 1
    rows: int | None = None
    pageSize: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_array(cls, data: Any) -> Any:
        # The v2.4 schema documents a bare array; v2.5 wraps it.
        if isinstance(data, list):
            return {"bundles": data, "pageCount": 1}
        return data


# --- orders -------------------------------------------------------------------------------------


class OrderEsim(Wire):
    iccid: Iccid
    matchingId: str | None = None
    smdpAddress: str | None = None


class OrderLine(Wire):
    type: str = "bundle"
    item: str = ""
    quantity: int = 0
    subTotal: Decimal | None = None
    pricePerUnit: Decimal | None = None
    allowReassign: bool = False
    esims: list[OrderEsim] | None = None
    iccids: list[Iccid] | None = None


class OrderResponse(Wire):
    order: list[OrderLine] = []
    total: Decimal | None = None
    valid: bool | None = None
    currency: str = "USD"
    status: str | None = None
    statusMessage: str | None = None
    orderReference: str | None = None
    createdDate: str | None = None
    assigned: bool | None = None


class InstallDetails(Wire):
    """``GET /esims/assignments`` (JSON): one per eSIM."""

    iccid: Iccid
    matchingId: str | None = None
    smdpAddress: str | None = None
    profileStatus: str | None = None


# --- eSIMs --------------------------------------------------------------------------------------


class EsimListItem(Wire):
    iccid: Iccid
    customerRef: str | None = None


class EsimList(Wire):
    esims: list[EsimListItem] = []


class EsimDetails(Wire):
    iccid: Iccid
    matchingId: str | None = None
    smdpAddress: str | None = None
    profileStatus: str | None = None
    customerRef: str | None = None
    firstInstalledDateTime: Any = None


class Assignment(Wire):
    id: Text = ""
    callTypeGroup: str = "data"
    initialQuantity: Decimal | None = None  # bytes
    remainingQuantity: Decimal | None = None  # bytes
    assignmentDateTime: str | None = None
    assignmentReference: str | None = None
    bundleState: str = ""
    unlimited: bool = False
    startTime: str | None = None
    endTime: str | None = None


class AppliedBundle(Wire):
    name: str
    description: str = ""
    assignments: list[Assignment] = []


class EsimBundles(Wire):
    bundles: list[AppliedBundle] = []


class Location(Wire):
    """``GET /esims/{iccid}/location``: where the network last saw the eSIM.

    Every field is optional in the schema, and all are strings: ``mobileNetworkCode`` is read as
    the PLMN (MCC + MNC, see :func:`split_plmn`), ``country`` may be a code or a name, and
    ``lastSeen`` is a timestamp. Numbers are accepted as text (``23410`` = ``"23410"``)."""

    mobileNetworkCode: Text | None = None
    networkName: str | None = None
    networkBrandName: str | None = None
    country: str | None = None
    lastSeen: Any = None


class Compatibility(Wire):
    compatible: bool


class StatusBody(Wire):
    status: str | None = None
    message: str | None = None


# --- callbacks ----------------------------------------------------------------------------------


class CallbackBundle(Wire):
    id: Text | None = None
    reference: str | None = None
    name: str = ""
    initialQuantity: Decimal | None = None
    remainingQuantity: Decimal | None = None
    startTime: str | None = None
    endTime: str | None = None
    unlimited: bool = False


class Callback(Wire):
    iccid: Iccid | None = None
    alertType: str
    bundle: CallbackBundle | None = None


# --- helpers ------------------------------------------------------------------------------------

_PLMN = re.compile(r"(\d{3})[\s/:._-]?(\d{2,3})")
_DIGITS = re.compile(r"\d{1,3}")


def split_plmn(value: str | None) -> tuple[str, str]:
    """``(mcc, mnc)`` from eSIM Go's ``mobileNetworkCode``.

    The field is documented only as "Mobile Network Code". Read as the combined PLMN it is what
    it looks like in practice: the MCC is always 3 digits and the MNC 2 or 3, so ``"23410"`` is
    234/10 and ``"310410"`` is 310/410 (a separator, ``"234-10"``, is accepted too). A value of
    1 to 3 digits is taken as the MNC alone, with the MCC unknown (``""``); anything else
    yields ``("", "")`` rather than a guess."""
    text = (value or "").strip()
    if match := _PLMN.fullmatch(text):
        return match.group(1), match.group(2)
    if _DIGITS.fullmatch(text):
        return "", text
    return "", ""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 (any fraction length, ``Z``) or epoch milliseconds → aware UTC; else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return _EPOCH + timedelta(milliseconds=int(value))
    if not isinstance(value, str) or not value.strip():
        return None
    text = (
        _FRACTION.sub(r"\1", value.strip(), count=1).replace("Z", "+00:00").replace("z", "+00:00")
    )
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
