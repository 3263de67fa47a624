"""The eSIM Go API v2.5 adapter (wire notes: /work/shared/providers/esimgo.md).

eSIM Go sells synchronously (``POST /orders`` charges and assigns at once) but has **no
idempotency key**. So every purchase is:

1. look our reference up first (``GET /esims?filterBy=customerRef``) — a retry finds the eSIMs;
2. ``type: validate`` (free dry run: bundle exists, price, balance);
3. ``type: transaction`` with ``assign: true``;
4. tag every new eSIM with ``customerRef = "esimgate:<our reference>"`` (``PUT /esims``), which is
   how :meth:`get_order` finds the order later.

A transaction whose answer was lost (timeout, 5xx) cannot be found by reference, because the
tagging never happened. This process remembers such references and refuses to buy them again or
to report them missing (it raises ``TechnicalError`` instead), so the order stays pending for an
operator to reconcile against ``GET /orders``. That memory does not survive a restart.

Top-ups are orders of a compatible bundle for an existing ICCID. Cancel is not offered: refunds
are disabled on eSIM Go accounts by default, and revoking a bundle without one loses the money.

**Data units.** eSIM Go's catalogue ``dataAmount`` is in *decimal* MB (1000 MB = 1 GB =
1 000 000 000 bytes; :data:`BYTES_PER_MB`), and its assignments count decimal bytes. The port
carries exact bytes, so a "1GB" eSIM Go bundle is listed with ``data_bytes = 1_000_000_000``,
which downstream (binary units) is 953.67 MB (``data_amount_gb`` 0.931). That is what the customer
really gets, so such a bundle is deliberately *not* the same product as a binary 1 GB
(1 073 741 824 bytes) package of another upstream: the catalogue's identity key includes
``data_bytes``, so the two are never merged into one package and routing never sends an order for
one to the other.

**Live status.** :meth:`EsimGoProvider.query_usage` also asks ``GET /esims/{iccid}/location`` and
fills ``UsageReport.last_network``: the operator is ``networkBrandName`` (else ``networkName``),
MCC/MNC come from ``mobileNetworkCode`` read as the PLMN (:func:`~.wire.split_plmn`), and the
country (a code or a name upstream) is normalised to ISO 3166-1 alpha-2
(:func:`~.countries.country_code`; ``""`` when it names no known country). eSIM Go reports no
radio technology, so ``connection_type`` is ``""`` (unknown), as other adapters do. ``lastSeen`` is
when the network last saw the device (attach or location update), not when it last used data, so
it is not ``last_usage_at``; the port has no field for it and it is not a status word, so it is
dropped. The location is a nicety: a never-attached eSIM (404, or an answer naming no network),
any other refusal and any technical failure leave ``last_network`` empty and the usage report
stands. A profile still ``Released`` and never installed cannot have attached, so it is not asked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

import httpx
from pydantic import ValidationError

from esimgate.clock import Clock, SystemClock
from esimgate.providers.base import (
    CancelResult,
    Capability,
    Coverage,
    EsimProfile,
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
    NetworkSighting,
    OrderRequest,
    PackageKind,
    ProviderNotice,
    ProviderPackage,
    Purchase,
    PurchaseState,
    TechnicalError,
    TopUpRequest,
    TopUpResult,
    UsageReport,
)
from esimgate.providers.countries import country_code
from esimgate.providers.esimgo.client import PRODUCTION_BASE_URL, PROVIDER, EsimGoClient
from esimgate.providers.esimgo.wire import (
    Assignment,
    Bundle,
    Callback,
    EsimDetails,
    Location,
    OrderResponse,
    parse_time,
    split_plmn,
)
from esimgate.providers.registry import AdapterConfig

log = logging.getLogger(__name__)

CUSTOMER_REF_PREFIX: Final = "esimgate:"
MAX_ORDER_QUANTITY: Final = 10  # eSIM Go guidance: at most 10 items per order
CATALOGUE_PAGE_SIZE: Final = 100
MAX_CATALOGUE_PAGES: Final = 1000
TOPUP_GROUP_WORD: Final = "topup"  # bundle groups/names marking top-up-only bundles (inferred)
BYTES_PER_MB: Final = 1_000_000  # eSIM Go's MB are decimal: 1 GB bundle = 1 000 000 000 bytes
# bundleState words: where the eSIM still has (or will have) this bundle's data.
_LIVE_STATES: Final = ("active", "processing", "queued", "depleted")
_STATE_PRIORITY: Final = {"active": 0, "processing": 1, "queued": 2, "depleted": 3}


def customer_ref(reference: str) -> str:
    return f"{CUSTOMER_REF_PREFIX}{reference}"


def money(amount: Decimal, currency: str) -> Money:
    """A decimal amount as exact 1/10000 units (sub-1/10000 digits round half up)."""
    return Money.from_decimal(amount, currency or "USD")


def bytes_from_decimal(amount: Decimal, unit: int) -> int:
    """Exact bytes from a decimal amount of ``unit`` bytes, rounded half up to a byte."""
    return int((amount * unit).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def lpa_string(smdp_address: str, matching_id: str) -> str:
    address = smdp_address.strip()
    for scheme in ("https://", "http://"):
        if address.casefold().startswith(scheme):
            address = address[len(scheme) :]
    return f"LPA:1${address.rstrip('/')}${matching_id}"


def webhook_signature(raw_body: bytes, api_key: str) -> str:
    """V3 callback signature: base64(HMAC-SHA256(key = API key, message = raw body))."""
    digest = hmac.new(api_key.encode(), raw_body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_webhook(headers: Mapping[str, str], raw_body: bytes, secret: str) -> bool:
    """Check ``X-Signature-SHA256`` over the raw bytes; ``secret`` is the account's API key.

    Base64 is the documented form; a hex digest is accepted too (one guide page shows hex)."""
    value = next((v for k, v in headers.items() if k.casefold() == "x-signature-sha256"), None)
    if not value or not secret:
        return False
    digest = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
    given = value.strip()
    if hmac.compare_digest(given.encode(), base64.b64encode(digest)):
        return True
    return hmac.compare_digest(given.lower().encode(), digest.hex().encode())


@dataclass(slots=True)
class _Attempt:
    """A transaction this process sent for one of our references."""

    order_reference: str | None = None  # known once the upstream answered
    purchase: Purchase | None = None


@dataclass(frozen=True, slots=True)
class _TopUpAttempt:
    """A top-up transaction this process sent: the bundle's assignments before it."""

    before: frozenset[str]
    unit_cost: Money | None


class EsimGoProvider:
    """eSIM Go v2.5 behind the provider port."""

    kind = "esimgo"
    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.CATALOGUE,
            Capability.ORDER,
            Capability.ORDER_LOOKUP,
            Capability.USAGE,
            Capability.LIVE_STATUS,  # last network from GET /esims/{iccid}/location
            Capability.TOPUP,
            Capability.WEBHOOKS,
        }
    )
    max_usage_batch = 1  # no batch endpoint: two or three calls per eSIM
    requests_per_second = 1.0  # unpublished; integrators throttle to about 1 request/second

    def __init__(
        self,
        client: EsimGoClient,
        *,
        clock: Clock | None = None,
        order_spacing_seconds: float = 3.0,
        currency: str = "USD",
        webhook_key: str = "",
    ) -> None:
        self._client = client
        self._webhook_key = webhook_key  # V3 callbacks are signed with the account's API key
        self._currency = currency.upper()  # the organisation currency catalogue prices are in
        self._clock: Clock = clock or SystemClock()
        self._order_spacing = order_spacing_seconds  # eSIM Go: at least 3 s between orders
        self._order_lock = asyncio.Lock()
        self._last_order_at: float | None = None
        self._attempts: dict[str, _Attempt] = {}
        self._topups: dict[str, TopUpResult] = {}
        self._topup_attempts: dict[str, _TopUpAttempt] = {}

    @classmethod
    def from_config(cls, config: AdapterConfig) -> EsimGoProvider:
        api_key = config.credentials.get("api_key", "")
        if not api_key:
            raise ValueError("eSIM Go accounts need credentials {'api_key': …}")
        http = httpx.AsyncClient(
            base_url=config.base_url or PRODUCTION_BASE_URL,
            timeout=httpx.Timeout(30, connect=5),
            follow_redirects=False,
        )
        spacing = float(config.credentials.get("order_spacing_seconds", "3"))
        return cls(
            EsimGoClient(http, api_key),
            clock=config.clock,
            order_spacing_seconds=spacing,
            currency=config.credentials.get("currency", "USD"),
            webhook_key=api_key,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- catalogue --------------------------------------------------------------------------

    async def list_packages(self) -> Sequence[ProviderPackage]:
        packages: list[ProviderPackage] = []
        page, pages = 1, 1
        while page <= pages and page <= MAX_CATALOGUE_PAGES:
            result = await self._client.get_catalogue(page, CATALOGUE_PAGE_SIZE)
            for item in result.bundles:
                try:
                    bundle = Bundle.model_validate(item)
                except ValidationError as exc:
                    name = item.get("name") if isinstance(item, dict) else None
                    log.warning("eSIM Go bundle %r skipped: %s", name, exc.errors()[:3])
                    continue
                packages.append(_package(bundle, self._currency))
            pages = result.pageCount
            page += 1
        return packages

    # --- orders -----------------------------------------------------------------------------

    async def create_order(self, request: OrderRequest) -> Purchase:
        if not 1 <= request.quantity <= MAX_ORDER_QUANTITY:
            raise _refuse(LogicalReason.REJECTED, f"quantity must be 1 to {MAX_ORDER_QUANTITY}")
        async with self._order_lock:
            existing = await self.get_order(request.reference)  # raises if ambiguous here
            if existing is not None:
                return existing
            items = [
                {
                    "type": "bundle",
                    "item": request.provider_code,
                    "quantity": request.quantity,
                    "allowReassign": False,
                }
            ]
            unit_cost = await self._validate(items, request.provider_code, request)
            await self._space_orders()
            attempt = self._attempts[request.reference] = _Attempt()
            try:
                order = await self._client.post_orders("transaction", items)
            except LogicalError:
                del self._attempts[request.reference]  # a definite no: nothing was bought
                raise
            except TechnicalError as exc:
                if exc.committed is False:
                    del self._attempts[request.reference]
                raise
            # From here the money is spent: never raise for the bookkeeping that follows.
            attempt.order_reference = order.orderReference
            purchase = await self._purchase(request.reference, order, unit_cost)
            attempt.purchase = purchase
            await self._tag(request.reference, purchase)
            return purchase

    async def get_order(
        self, reference: str, provider_order_id: str | None = None
    ) -> Purchase | None:
        found = await self._client.list_esims_by_customer_ref(customer_ref(reference))
        wanted = customer_ref(reference)
        iccids = [e.iccid for e in found.esims if e.customerRef in (None, wanted)]
        attempt = self._attempts.get(reference)
        known_purchase = attempt.purchase if attempt else None
        if known_purchase is not None and len(known_purchase.esims) > len(set(iccids)):
            await self._tag(reference, known_purchase)  # some eSIMs missed their customerRef
            return known_purchase
        if iccids:
            profiles = []
            for iccid in dict.fromkeys(iccids):
                details = await self._client.get_esim(iccid)
                profiles.append(_profile(details.iccid, details.matchingId, details.smdpAddress))
            known = attempt.purchase if attempt else None
            ready = all(p is not None for p in profiles)
            return Purchase(
                reference=reference,
                state=PurchaseState.COMPLETED if ready else PurchaseState.PENDING,
                provider_order_id=attempt.order_reference if attempt else None,
                esims=tuple(p for p in profiles if p is not None),
                unit_cost=known.unit_cost if known else None,
            )
        if attempt is None and provider_order_id:
            # Placed by another process (or before a restart): esimgate stored the order id.
            attempt = self._attempts[reference] = _Attempt(order_reference=provider_order_id)
        if attempt is None:
            return None
        if attempt.order_reference is None:
            raise TechnicalError(
                f"an eSIM Go transaction for {reference!r} got no answer; it may have been "
                "bought (reconcile with GET /orders)",
                provider=PROVIDER,
            )
        # Bought, but the customerRef tagging did not stick: read the order itself.
        order = await self._client.get_order(attempt.order_reference)
        unit_cost = attempt.purchase.unit_cost if attempt.purchase else None
        purchase = await self._purchase(reference, order, unit_cost)
        attempt.purchase = purchase
        await self._tag(reference, purchase)
        return purchase

    # --- usage ------------------------------------------------------------------------------

    async def query_usage(self, esims: Sequence[EsimRef]) -> Sequence[UsageReport]:
        reports: list[UsageReport] = []
        for ref in esims:
            iccid = ref.iccid or ref.provider_esim_id
            try:
                details = await self._client.get_esim(iccid)
                applied = await self._client.get_esim_bundles(iccid)
            except LogicalError as exc:
                if exc.reason is LogicalReason.NOT_FOUND:
                    continue  # unknown to this account: simply absent from the reports
                raise
            assignments = [a for b in applied.bundles for a in b.assignments if _is_data(a)]
            report = _usage(ref, details.profileStatus, assignments, self._clock.now())
            sighting = await self._last_network(details)
            if sighting is not None:
                report = replace(report, last_network=sighting)
            reports.append(report)
        return reports

    async def _last_network(self, details: EsimDetails) -> NetworkSighting | None:
        """The network the eSIM was last seen on; ``None`` when it never attached or the
        lookup failed (the usage report does not depend on it)."""
        never_installed = details.firstInstalledDateTime in (None, "", 0)
        if (details.profileStatus or "").casefold() == "released" and never_installed:
            return None  # not on any device yet: nothing can have attached
        try:
            location = await self._client.get_location(details.iccid)
        except LogicalError as exc:
            log.debug("eSIM Go has no location for %s: %s", details.iccid, exc.message)
            return None
        except TechnicalError as exc:
            log.warning("eSIM Go location of %s unavailable: %s", details.iccid, exc.message)
            return None
        return _sighting(location)

    # --- top-ups ----------------------------------------------------------------------------

    async def top_up(self, request: TopUpRequest) -> TopUpResult:
        """Order the bundle for the eSIM. eSIM Go does not dedupe, so a retry after an unanswered
        transaction first looks for an assignment of that bundle that was not there before."""
        done = self._topups.get(request.reference)
        if done is not None:
            return done
        if request.quantity != 1:
            raise _refuse(LogicalReason.REJECTED, "eSIM Go top-ups are one bundle at a time")
        iccid = request.esim.iccid or request.esim.provider_esim_id
        code = request.provider_code
        async with self._order_lock:
            pending = self._topup_attempts.get(request.reference)
            if pending is not None:
                added = await self._new_assignment(iccid, code, pending.before)
                if added is not None:
                    return self._topped_up(request.reference, pending.unit_cost, added)
            if not await self._client.is_compatible(iccid, code):
                raise _refuse(
                    LogicalReason.NOT_ALLOWED, f"bundle {code!r} cannot top up eSIM {iccid}"
                )
            items = [
                {
                    "type": "bundle",
                    "item": code,
                    "quantity": 1,
                    "iccids": [iccid],
                    "allowReassign": False,
                }
            ]
            unit_cost = await self._validate(items, code, None)
            before = await self._assignment_ids(iccid, code)
            await self._space_orders()
            self._topup_attempts[request.reference] = _TopUpAttempt(before, unit_cost)
            try:
                order = await self._client.post_orders("transaction", items)
            except LogicalError:
                del self._topup_attempts[request.reference]
                raise
            except TechnicalError as exc:
                if exc.committed is False:
                    del self._topup_attempts[request.reference]
                raise
            line = _line(order, code)
            if line is not None and line.pricePerUnit is not None:
                unit_cost = money(line.pricePerUnit, order.currency)
            try:
                added = await self._new_assignment(iccid, code, before)
            except (TechnicalError, LogicalError):
                added = None  # bought all the same; the details are a nicety
            return self._topped_up(request.reference, unit_cost, added)

    def _topped_up(
        self, reference: str, unit_cost: Money | None, added: Assignment | None
    ) -> TopUpResult:
        total = None
        if added is not None and not added.unlimited and added.initialQuantity is not None:
            total = _bytes(added.initialQuantity)
        result = TopUpResult(
            reference=reference,
            state=PurchaseState.COMPLETED,
            unit_cost=unit_cost,
            total_bytes=total,
            expires_at=parse_time(added.endTime) if added is not None else None,
        )
        self._topups[reference] = result
        self._topup_attempts.pop(reference, None)
        return result

    async def _assignment_ids(self, iccid: str, code: str) -> frozenset[str]:
        applied = await self._client.get_esim_bundles(iccid)
        return frozenset(a.id for b in applied.bundles if b.name == code for a in b.assignments)

    async def _new_assignment(
        self, iccid: str, code: str, before: frozenset[str]
    ) -> Assignment | None:
        applied = await self._client.get_esim_bundles(iccid)
        fresh = [
            a
            for b in applied.bundles
            if b.name == code
            for a in b.assignments
            if a.id not in before
        ]
        return fresh[0] if fresh else None

    async def cancel(self, esim: EsimRef) -> CancelResult:
        raise _refuse(
            LogicalReason.NOT_ALLOWED,
            "eSIM Go cancellation is not supported (refunds are off by default upstream)",
        )

    # --- callbacks (WebhookReceiver) ---------------------------------------------------------

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, client_ip: str
    ) -> ProviderNotice:
        """A V3 callback, verified over the raw bytes. eSIM Go sends no event id, so the body's
        SHA-256 is the id (a resend of the same alert is a duplicate). Unsigned V2 callbacks
        are refused: switch the portal's Callback Version to V3."""
        if not verify_webhook(headers, body, self._webhook_key):
            raise _refuse(LogicalReason.REJECTED, "bad or missing X-Signature-SHA256")
        try:
            event = Callback.model_validate(json.loads(body, parse_float=Decimal))
        except (ValueError, ValidationError):
            raise _refuse(LogicalReason.REJECTED, "not an eSIM Go callback") from None
        return ProviderNotice(
            event_id=hashlib.sha256(body).hexdigest(),
            kind=event.alertType,
            reference=None,  # callbacks name the eSIM and bundle, never our reference
            iccid=event.iccid,
        )

    # --- helpers ----------------------------------------------------------------------------

    async def _validate(
        self, items: list[dict[str, Any]], code: str, request: OrderRequest | None
    ) -> Money | None:
        """The free dry run; returns the unit cost it quotes."""
        checked = await self._client.post_orders("validate", items)
        if checked.valid is False:
            raise _refuse(LogicalReason.REJECTED, f"eSIM Go would not sell {code!r}")
        line = _line(checked, code)
        if line is None or line.pricePerUnit is None:
            return None
        unit_cost = money(line.pricePerUnit, checked.currency)
        expected = request.expected_unit_cost if request is not None else None
        if expected is not None and expected != unit_cost:
            raise _refuse(
                LogicalReason.PRICE_CHANGED,
                f"unit cost is {unit_cost.amount_e4} {unit_cost.currency}, "
                f"not {expected.amount_e4} {expected.currency}",
            )
        return unit_cost

    async def _space_orders(self) -> None:
        if self._last_order_at is not None and self._order_spacing > 0:
            wait = self._last_order_at + self._order_spacing - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        self._last_order_at = time.monotonic()

    async def _purchase(
        self, reference: str, order: OrderResponse, unit_cost: Money | None
    ) -> Purchase:
        line_costs = [x.pricePerUnit for x in order.order if x.pricePerUnit is not None]
        if line_costs:
            unit_cost = money(line_costs[0], order.currency)
        profiles = [
            _profile(e.iccid, e.matchingId, e.smdpAddress)
            for line in order.order
            for e in (line.esims or [])
        ]
        expected = sum(line.quantity for line in order.order)
        if (not profiles or any(p is None for p in profiles)) and order.orderReference:
            try:
                details = await self._client.get_assignments(order.orderReference)
            except (TechnicalError, LogicalError):
                details = []  # still allocating, or a hiccup: report PENDING, poll later
            if details:
                profiles = [_profile(d.iccid, d.matchingId, d.smdpAddress) for d in details]
        ready = [p for p in profiles if p is not None]
        complete = (
            bool(ready)
            and len(ready) == len(profiles)
            and len(ready) >= expected
            and (order.status or "completed").casefold() == "completed"
        )
        return Purchase(
            reference=reference,
            state=PurchaseState.COMPLETED if complete else PurchaseState.PENDING,
            provider_order_id=order.orderReference,
            esims=tuple(ready),
            unit_cost=unit_cost,
        )

    async def _tag(self, reference: str, purchase: Purchase) -> None:
        """Attach our reference to every eSIM of the order (best effort: the order stands)."""
        for esim in purchase.esims:
            try:
                await self._client.set_customer_ref(esim.iccid, customer_ref(reference))
            except (TechnicalError, LogicalError):
                return  # get_order falls back on this process's memory of the order


def _refuse(reason: LogicalReason, message: str) -> LogicalError:
    return LogicalError(reason, message, provider=PROVIDER)


def _line(order: OrderResponse, code: str) -> Any:
    return next((line for line in order.order if line.item == code), None) or (
        order.order[0] if order.order else None
    )


def _profile(iccid: str, matching_id: str | None, smdp: str | None) -> EsimProfile | None:
    if not matching_id or not smdp:
        return None
    return EsimProfile(
        iccid=iccid,
        provider_esim_id=iccid,  # eSIM Go keys everything on the ICCID
        smdp_address=smdp,
        matching_id=matching_id,
        lpa=lpa_string(smdp, matching_id),
    )


def _is_topup(bundle: Bundle) -> bool:
    words = [*bundle.groups, bundle.name, bundle.description]
    return any(TOPUP_GROUP_WORD in w.casefold().replace("-", "").replace(" ", "") for w in words)


def _package(bundle: Bundle, currency: str) -> ProviderPackage:
    coverage = tuple(
        Coverage(country_code=c.iso.strip().upper(), country_name=c.name or c.iso)
        for c in bundle.countries
        if c.iso.strip()
    )
    regions = {c.region for c in bundle.countries if c.region}
    if len(coverage) == 1:
        kind, region = PackageKind.LOCAL, coverage[0].country_name
    elif "Global" in regions or len(regions) > 1:
        kind, region = PackageKind.GLOBAL, "Global"
    else:
        kind, region = PackageKind.REGIONAL, next(iter(regions), "Regional")
    unlimited = bundle.unlimited or (bundle.dataAmount is not None and bundle.dataAmount < 0)
    data_bytes = (
        None
        if unlimited or bundle.dataAmount is None
        else bytes_from_decimal(bundle.dataAmount, BYTES_PER_MB)
    )
    voice = sum(
        int(a.amount or 0) for a in bundle.allowances if a.type.upper() == "VOICE" and a.amount
    )
    sms = sum(int(a.amount or 0) for a in bundle.allowances if a.type.upper() == "SMS" and a.amount)
    daily = bundle.unlimited and any("unlimited" in g.casefold() for g in bundle.groups)
    return ProviderPackage(
        provider_code=bundle.name,
        name=bundle.description or bundle.name,
        kind=kind,
        region=region,
        coverage=coverage,
        data_bytes=data_bytes,
        validity_days=bundle.duration,
        cost=money(bundle.price, currency),
        voice_minutes=voice,
        sms_count=sms,
        is_topup=_is_topup(bundle),
        rechargeable=True,  # any compatible bundle can be added to an eSIM Go eSIM
        daily_data=daily,
    )


def _sighting(location: Location) -> NetworkSighting | None:
    """A location answer as the port's sighting; ``None`` when it names no network (how an
    answer for a never-attached eSIM may look, instead of a 404)."""
    operator = (location.networkBrandName or "").strip() or (location.networkName or "").strip()
    mcc, mnc = split_plmn(location.mobileNetworkCode)
    if not operator and not mnc:
        return None
    return NetworkSighting(
        operator=operator,
        mcc=mcc,
        mnc=mnc,
        country_code=country_code(location.country) or "",
        connection_type="",  # eSIM Go does not say which radio (2G…5G) the device used
    )


def _is_data(assignment: Assignment) -> bool:
    return assignment.callTypeGroup.casefold() in ("data", "")


def _bytes(value: Decimal | None) -> int:
    return 0 if value is None else bytes_from_decimal(max(value, Decimal(0)), 1)


def _usage(
    ref: EsimRef, profile_status: str | None, assignments: list[Assignment], now: datetime
) -> UsageReport:
    live = [a for a in assignments if a.bundleState.casefold() in _LIVE_STATES]
    if live:
        current = min(live, key=lambda a: _STATE_PRIORITY[a.bundleState.casefold()])
        counted = live
    elif assignments:
        current = max(assignments, key=lambda a: parse_time(a.assignmentDateTime) or now)
        counted = [current]
    else:
        current, counted = None, []
    unlimited = any(a.unlimited for a in counted)
    total = None if unlimited else sum(_bytes(a.initialQuantity) for a in counted)
    used = sum(
        max(_bytes(a.initialQuantity) - _bytes(a.remainingQuantity), 0)
        for a in counted
        if a.initialQuantity is not None
    )
    raw: dict[str, str] = {}
    if current is not None and current.bundleState:
        raw["bundleState"] = current.bundleState
    if profile_status:
        raw["profileStatus"] = profile_status
    started = [t for a in counted if (t := parse_time(a.startTime)) is not None]
    return UsageReport(
        esim=ref,
        used_bytes=used,
        total_bytes=total,
        observed_at=now,
        raw_status=raw,
        activated_at=min(started) if started else None,
        expires_at=parse_time(current.endTime) if current is not None else None,
    )
