"""The provider port: the only way esimgate talks to an upstream eSIM provider.

Every adapter (the built-in simulator, SimplifyTrip, eSIM Access, Airalo, eSIM Go, esimfly…)
implements :class:`Provider` and speaks only the normalised types below. Units are fixed at this
boundary so nothing past it has to know a provider's habits:

* data volumes are **bytes** (``None`` means unlimited);
* money is an integer in **1/10000 of the currency unit** (eSIM Access's native unit; exact for
  every decimal price the upstreams publish);
* times are timezone-aware UTC datetimes;
* every mutating call carries **our own reference** so a retry or a reconciliation can find what
  the upstream did (eSIM Access ``transactionId``, SimplifyTrip ``trackId``, Airalo
  ``description``, esimfly ``idempotency_key``).

Errors come in two families. :class:`TechnicalError` means the upstream could not be asked or did
not answer usefully (timeouts, 5xx, 429, broken JSON): callers may retry reads or fail over, and
must treat a create as *ambiguous* unless ``committed`` is ``False``. :class:`LogicalError` is the
upstream saying no (unknown package, out of stock, not allowed in this state): it is surfaced to
the client and never retried.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol, runtime_checkable

E4 = 10_000
"""Money unit of the port: 1/10000 of a currency unit (10000 = 1.00 USD)."""


class Capability(enum.StrEnum):
    """What an adapter can do, declared rather than discovered."""

    CATALOGUE = "catalogue"
    ORDER = "order"
    ASYNC_PROVISIONING = "async_provisioning"  # some orders return PENDING and complete later
    # get_order(reference) alone finds any order by our reference, in any process. Without it
    # get_order needs the stored provider_order_id and, when it cannot know, never answers None
    # (which refunds): it raises TechnicalError, or answers PENDING if the order may still come.
    ORDER_LOOKUP = "order_lookup"
    USAGE = "usage"
    BATCH_USAGE = "batch_usage"  # query_usage accepts more than one eSIM per call
    LIVE_STATUS = "live_status"  # usage reports carry network/device details
    TOPUP = "topup"
    CANCEL = "cancel"
    SUSPEND = "suspend"
    WEBHOOKS = "webhooks"


class PackageKind(enum.StrEnum):
    LOCAL = "local"
    REGIONAL = "regional"
    GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in 1/10000 units of ``currency`` (ISO 4217)."""

    amount_e4: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount_e4, int) or isinstance(self.amount_e4, bool):
            raise TypeError("Money.amount_e4 must be an int (1/10000 units), never a float")

    @classmethod
    def from_decimal(cls, amount: Decimal, currency: str) -> Money:
        """An upstream's exact decimal amount in 1/10000 units (digits beyond the fourth
        place, which no upstream publishes, round half up); never through a float."""
        scaled = (Decimal(amount) * E4).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return cls(int(scaled), currency.upper())


@dataclass(frozen=True, slots=True)
class Network:
    """A mobile network an eSIM may attach to."""

    operator: str
    mcc: str
    mnc: str
    radio: tuple[str, ...] = ("4G",)  # e.g. ("4G", "5G")


@dataclass(frozen=True, slots=True)
class Coverage:
    """One covered country and the networks usable there."""

    country_code: str  # ISO 3166-1 alpha-2, upper case
    country_name: str
    networks: tuple[Network, ...] = ()


@dataclass(frozen=True, slots=True)
class ProviderPackage:
    """A package as an upstream sells it, normalised."""

    provider_code: str  # the upstream's own id: sku, packageCode, slug, bundle name…
    name: str
    kind: PackageKind
    region: str  # display region: the country's name for local packages
    coverage: tuple[Coverage, ...]
    data_bytes: int | None  # None = unlimited
    validity_days: int
    cost: Money  # our wholesale cost for one unit
    voice_minutes: int = 0
    sms_count: int = 0
    is_topup: bool = False
    rechargeable: bool = False  # accepts top-ups after purchase
    daily_data: bool = False  # data_bytes is a per-day allowance (day passes)
    renewable: bool = False  # the upstream supports recurring renewal
    # For top-up packages: upstream codes of the base packages it applies to; empty = any
    # package of this provider whose coverage includes the top-up's coverage.
    topup_for: frozenset[str] = frozenset()


class PurchaseState(enum.StrEnum):
    COMPLETED = "completed"  # eSIM details are available now
    PENDING = "pending"  # accepted; details come later (poll get_order or await a webhook)
    FAILED = "failed"  # the upstream definitely did not sell anything


@dataclass(frozen=True, slots=True)
class EsimProfile:
    """An installable eSIM profile as the upstream delivered it."""

    iccid: str
    provider_esim_id: str  # the upstream's stable key (eSIM Access esimTranNo, …); else the ICCID
    smdp_address: str
    matching_id: str
    lpa: str  # passed through unchanged when the upstream gives one
    confirmation_code_required: bool = False


@dataclass(frozen=True, slots=True)
class OrderRequest:
    reference: str  # our order reference, sent upstream as the idempotency/tracking id
    provider_code: str
    quantity: int
    expected_unit_cost: Money | None = None  # lets upstreams with a price check refuse a change


@dataclass(frozen=True, slots=True)
class Purchase:
    reference: str
    state: PurchaseState
    provider_order_id: str | None = None
    esims: tuple[EsimProfile, ...] = ()
    unit_cost: Money | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class EsimRef:
    """How to point an upstream at one eSIM."""

    iccid: str
    provider_esim_id: str
    provider_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkSighting:
    operator: str
    mcc: str
    mnc: str
    country_code: str
    connection_type: str  # e.g. "4G - LTE", "5G"


@dataclass(frozen=True, slots=True)
class UsageReport:
    """What the upstream says about one eSIM right now, in our units, plus its raw words."""

    esim: EsimRef
    used_bytes: int
    total_bytes: int | None  # None = unlimited
    observed_at: datetime
    raw_status: Mapping[str, str] = field(default_factory=dict)  # every raw status field, as sent
    activated_at: datetime | None = None
    expires_at: datetime | None = None
    last_usage_at: datetime | None = None
    last_network: NetworkSighting | None = None
    device_model: str | None = None
    device_imei: str | None = None


@dataclass(frozen=True, slots=True)
class TopUpRequest:
    reference: str
    esim: EsimRef
    provider_code: str
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class TopUpResult:
    reference: str
    state: PurchaseState
    unit_cost: Money | None = None
    total_bytes: int | None = None
    expires_at: datetime | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class CancelResult:
    esim: EsimRef
    cancelled: bool
    refund: Money | None = None
    reason: str | None = None


class ProviderError(Exception):
    """Base of everything an adapter raises."""

    def __init__(self, message: str, *, provider: str = "", raw: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.raw = raw


class TechnicalError(ProviderError):
    """The upstream could not be asked, or did not answer usefully.

    ``committed`` says what we know about a mutating call: ``False`` when the request surely never
    reached the upstream (connection refused, circuit open), ``None`` when it may have (read
    timeout, 5xx after sending). Only ``False`` lets an order fail over or release money at once;
    ``None`` leaves the order pending until :meth:`Provider.get_order` settles it.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        raw: str | None = None,
        committed: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, raw=raw)
        self.committed = committed
        self.retry_after = retry_after


class LogicalReason(enum.StrEnum):
    INVALID_PACKAGE = "invalid_package"
    OUT_OF_STOCK = "out_of_stock"
    PRICE_CHANGED = "price_changed"
    INSUFFICIENT_FUNDS = "insufficient_funds"  # our prepaid balance at the upstream
    NOT_ALLOWED = "not_allowed"  # operation not allowed in the current state
    NOT_FOUND = "not_found"
    REJECTED = "rejected"  # any other definite refusal


class LogicalError(ProviderError):
    """The upstream definitely refused; nothing was bought, nothing to retry."""

    def __init__(
        self,
        reason: LogicalReason,
        message: str,
        *,
        provider: str = "",
        raw: str | None = None,
        upstream_code: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, raw=raw)
        self.reason = reason
        self.upstream_code = upstream_code


@dataclass(frozen=True, slots=True)
class ProviderNotice:
    """An inbound provider webhook, verified and reduced to what esimgate acts on. The state
    it announces is never trusted as such: esimgate asks the provider again before acting."""

    event_id: str  # the provider's id for this notification: duplicates are dropped by it
    kind: str  # the provider's own event name
    reference: str | None = None  # our order reference, when it concerns an order
    iccid: str | None = None  # the eSIM, when it concerns one
    provider_order_id: str | None = None  # the upstream's own order id, when the event names it


@runtime_checkable
class WebhookReceiver(Protocol):
    """An adapter whose upstream sends webhooks."""

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, client_ip: str
    ) -> ProviderNotice:
        """Verify (signature, or source address where the upstream does not sign) and parse;
        raises LogicalError(REJECTED) for anything not genuinely from the upstream."""
        ...


@runtime_checkable
class Suspender(Protocol):
    """An adapter whose upstream can suspend an eSIM's service and resume it (operator use:
    fraud, a lost phone). Raises LogicalError(NOT_ALLOWED) when the eSIM's state forbids it."""

    async def suspend(self, esim: EsimRef) -> None:
        """Stop the eSIM's service at the network; its data and validity are kept."""
        ...

    async def resume(self, esim: EsimRef) -> None:
        """Undo :meth:`suspend`."""
        ...


@runtime_checkable
class BalanceReader(Protocol):
    """An adapter whose upstream reports our prepaid balance there."""

    async def balance(self) -> Money:
        """Our current balance at the upstream."""
        ...


@runtime_checkable
class Provider(Protocol):
    """An upstream eSIM provider account, normalised."""

    kind: str  # "simulator", "esimaccess", …
    capabilities: frozenset[Capability]
    max_usage_batch: int  # eSIMs per query_usage call (1 when the upstream has no batch query)
    requests_per_second: float  # the upstream's published rate limit for this account

    async def list_packages(self) -> Sequence[ProviderPackage]:
        """The upstream's current catalogue, base packages and top-ups."""
        ...

    async def create_order(self, request: OrderRequest) -> Purchase:
        """Buy ``quantity`` eSIMs, tagged with our reference. Never retried blindly."""
        ...

    async def get_order(
        self, reference: str, provider_order_id: str | None = None
    ) -> Purchase | None:
        """Find an order by our reference; ``None`` when the upstream has no such order.

        ``provider_order_id`` is the upstream's own id for it when esimgate has stored one (from
        the create answer or a webhook). Upstreams with no lookup by our reference use it, so an
        order is found by any process, after any restart, not only by the one that placed it."""
        ...

    async def query_usage(self, esims: Sequence[EsimRef]) -> Sequence[UsageReport]:
        """Current usage and status of up to ``max_usage_batch`` eSIMs."""
        ...

    async def top_up(self, request: TopUpRequest) -> TopUpResult:
        """Add a top-up package to an eSIM, tagged with our reference."""
        ...

    async def cancel(self, esim: EsimRef) -> CancelResult:
        """Cancel an unused eSIM for a refund."""
        ...
