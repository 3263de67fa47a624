"""SimplifyTrip Merchant Open API v1 as an esimgate provider (doc: providers/simplifytrip.md).

What the upstream gives us, and how it maps to the port:

* catalogue: ``GET /products`` (SPU families with SKU variants); the SKU is our ``provider_code``.
  Price/currency field names are **unverified** (``price`` + ``currency``, else the account's
  configured currency). Coverage comes from an explicit country list if the upstream sends one
  (unverified shape), else from the country named in the English product name.
* orders are **always asynchronous**: ``POST /orders`` answers with ids only, so a new order is
  ``PENDING`` and :meth:`get_order` (``GET /orders/:trackId``, path unverified) completes it once
  the eSIMs are listed. Our reference goes upstream as ``trackId``. Whether the upstream refuses a
  duplicate ``trackId`` is undocumented, so :meth:`create_order` looks the reference up before it
  buys, and reconciles by lookup again when the upstream says "duplicate".
* usage: ``GET /products/esim/:iccid`` — one eSIM per call; bytes; raw status fields ``status``
  (newest ``activityLogs`` entry) and ``planStatus`` as the status table expects. When that
  endpoint does not know the ICCID (404), the ICCID may be a **physical SIM** sold through the
  same SimplifyTrip account (recharged by ICCID), so :meth:`~SimplifyTripProvider.query_usage`
  asks ``GET /products/sim/:iccid`` (doc §5.7: **path and response shape unverified**; the
  §5.6 shape with ``productInfo.type: "SIM"`` is assumed) and reports it exactly like an eSIM.
  The eSIM endpoint is always asked first, so an eSIM costs one call; a physical SIM costs two;
  an ICCID neither endpoint knows is absent from the reports. Any other answer from either
  endpoint (a fault, a refusal other than "not found") is raised as usual. If the physical path
  turns out wrong, the upstream's 404 for it only keeps such ICCIDs absent, as before.
* cancel: whole orders only (method/path unverified, configurable); refused here when the order
  holds more than one eSIM. No top-up exists upstream.
* webhooks: :meth:`SimplifyTripProvider.parse_webhook` accepts a delivery only when
  ``X-Simplify-Trip-Signature`` verifies (:func:`verify_webhook`, keyed by the ``checksumKey``
  credential) and reduces it to our ``trackId`` (the order reference) plus an ICCID; the body
  ``id`` is the event id (SHA-256 of the raw body when it has none).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Final

import httpx
from pydantic import ValidationError

from esimgate.clock import Clock, SystemClock
from esimgate.esims.units import daily_total, parse_volume
from esimgate.providers.base import (
    E4,
    CancelResult,
    Capability,
    Coverage,
    EsimProfile,
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
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
from esimgate.providers.registry import AdapterConfig
from esimgate.providers.simplifytrip.client import (
    DEFAULT_CANCEL_PATH,
    PROVIDER,
    SimplifyTripClient,
    is_duplicate,
)
from esimgate.providers.simplifytrip.wire import (
    CreateOrderRequest,
    EsimInfo,
    OrderDetails,
    OrderItemRequest,
    Product,
    Sku,
    Webhook,
    WireEsim,
    loads,
    loads_raw,
    sign,
)
from esimgate.providers.simulator.networks import COUNTRIES

log = logging.getLogger(__name__)

BASE_URL: Final = "https://merchant.simplifytrip.com/api/v1"
PAGE_SIZE: Final = 100
MAX_PAGES: Final = 200
WEBHOOK_SIGNATURE_HEADER: Final = "X-Simplify-Trip-Signature"
# Naive upstream times ("2025-05-13 22:42:42") look like UTC+8 next to ISO UTC ones (inferred).
UPSTREAM_LOCAL: Final = timezone(timedelta(hours=8))

_SUCCESS: Final = frozenset({"SUCCESS", "SUCCEEDED", "COMPLETED", "DONE"})
_FAILED: Final = frozenset({"FAILED", "FAIL", "FAILURE", "ERROR", "REJECTED"})
_CANCELLED: Final = frozenset({"CANCELLED", "CANCELED", "REFUNDED"})
_KNOWN_EVENTS: Final = frozenset({"PURCHASE_ORDER_SUCCESS"})  # the only documented type (§6)
_ICCID: Final = re.compile(r"[0-9]{18,22}|[0-9]{18,21}[Ff]")  # fits the 22-char column

# English country names → ISO codes, longest first so "Hong Kong" wins over shorter names.
_NAMES: Final = sorted(((c.name, c.code) for c in COUNTRIES), key=lambda item: -len(item[0]))
_NAME_PATTERNS: Final = [
    (re.compile(rf"\b{re.escape(name)}\b", re.IGNORECASE), name, code) for name, code in _NAMES
]
_BY_CODE: Final = {c.code: c.name for c in COUNTRIES}


def _refuse(reason: LogicalReason, message: str) -> LogicalError:
    return LogicalError(reason, message, provider=PROVIDER)


def parse_time(text: str | None) -> datetime | None:
    """An upstream time as aware UTC: ISO-8601 (``Z`` or offset), or naive local (UTC+8)."""
    if not text or not text.strip():
        return None
    cleaned = text.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        log.warning("simplifytrip: unparseable time %r", text)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UPSTREAM_LOCAL)
    return moment.astimezone(UTC)


def money_e4(amount: Decimal, currency: str) -> Money:
    """An exact decimal price as 1/10000 units; more than 4 decimals is refused, not rounded."""
    scaled = amount * E4
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {amount} has more than 4 decimals")
    return Money(int(scaled), currency.upper())


def _coverage(product: Product, name: str) -> tuple[Coverage, ...]:
    listed = []
    for country in product.countries:
        code = (country.code or "").strip().upper()
        if len(code) == 2 and code.isalpha():
            listed.append(Coverage(code, country.name or _BY_CODE.get(code, code)))
    if listed:
        return tuple(listed)
    found: list[Coverage] = []
    rest = name
    for pattern, country_name, code in _NAME_PATTERNS:
        if pattern.search(rest):
            found.append(Coverage(code, country_name))
            rest = pattern.sub(" ", rest)
    return tuple(found)


def _data_bytes(sku: Sku) -> tuple[int | None, bool]:
    """(total bytes or None for unlimited, is a daily allowance)."""
    daily = (sku.package or "").upper() == "DAILY"
    per = parse_volume(sku.data or "")
    return per, daily


def _profile(esim: WireEsim) -> EsimProfile:
    smdp, code = esim.smdp_address or "", esim.activation_code or ""
    lpa = esim.qr_code_content or ""
    parts = lpa.split("$")
    if len(parts) >= 3 and parts[0].upper().startswith("LPA:"):
        smdp, code = smdp or parts[1], code or parts[2]
    if not lpa and smdp and code:
        lpa = f"LPA:1${smdp}${code}"
    return EsimProfile(
        iccid=esim.iccid,
        provider_esim_id=esim.iccid,  # the upstream has no per-eSIM id besides the ICCID
        smdp_address=smdp,
        matching_id=code,
        lpa=lpa,
    )


def _purchase(reference: str, order: OrderDetails) -> Purchase:
    status = (order.status or "").strip().upper()
    if status in _FAILED:
        return Purchase(
            reference,
            PurchaseState.FAILED,
            provider_order_id=order.id,
            failure_reason=order.error or status,
        )
    if status in _CANCELLED:
        return Purchase(
            reference, PurchaseState.FAILED, provider_order_id=order.id, failure_reason=status
        )
    esims = tuple(_profile(e) for item in order.items for e in item.esims)
    expected = sum(item.quantity or 0 for item in order.items)
    if status in _SUCCESS and esims and len(esims) >= expected:
        return Purchase(reference, PurchaseState.COMPLETED, provider_order_id=order.id, esims=esims)
    # Any other word (processing, pending, …: undocumented) or eSIMs not all listed yet.
    return Purchase(reference, PurchaseState.PENDING, provider_order_id=order.id)


def _newest_log_status(info: EsimInfo) -> str | None:
    newest: tuple[str, int] | None = None
    status: str | None = None
    for index, entry in enumerate(info.activity_logs):
        if not entry.status:
            continue
        key = (entry.record_time or "", index)  # "YYYY-MM-DD HH:mm:ss" sorts as text
        if newest is None or key >= newest:
            newest, status = key, entry.status
    return status


def verify_webhook(headers: Mapping[str, str], raw_body: bytes, secret: str) -> bool:
    """Whether a webhook carries a valid ``X-Simplify-Trip-Signature`` (HMAC-SHA256 with the
    checksumKey over the flattened, sorted body, doc §6). ``secret`` is the checksumKey."""
    wanted = WEBHOOK_SIGNATURE_HEADER.lower()
    given = next((v for k, v in headers.items() if k.lower() == wanted), None)
    if not given or not secret:
        return False
    try:
        payload = loads_raw(raw_body)
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    try:
        expected = sign(payload, secret)
    except TypeError:
        return False
    return hmac.compare_digest(expected, given.strip().lower())


class SimplifyTripProvider:
    """The SimplifyTrip Merchant Open API account, behind the provider port."""

    kind = "simplifytrip"
    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.CATALOGUE,
            Capability.ORDER,
            Capability.ASYNC_PROVISIONING,
            Capability.ORDER_LOOKUP,
            Capability.USAGE,
            Capability.CANCEL,
            Capability.WEBHOOKS,
        }
    )
    max_usage_batch = 1
    # Leaky bucket per 3 s: GET 2000, POST/PUT/DELETE 100. One bucket covers all calls, so the
    # write limit is the safe one.
    requests_per_second = 100 / 3

    def __init__(
        self,
        client: SimplifyTripClient,
        *,
        clock: Clock | None = None,
        currency: str = "USD",
        webhook_secret: str | None = None,
    ) -> None:
        self._client = client
        # Webhooks are signed with the same checksumKey as our requests (doc §6).
        self._webhook_secret = client.checksum_key if webhook_secret is None else webhook_secret
        self._clock: Clock = clock or SystemClock()
        self._currency = currency.upper()

    @classmethod
    def from_config(cls, config: AdapterConfig) -> SimplifyTripProvider:
        creds = config.credentials
        missing = [k for k in ("apiKey", "secretKey", "checksumKey") if not creds.get(k)]
        if missing:
            raise ValueError(f"simplifytrip account {config.name!r}: missing {', '.join(missing)}")
        http = httpx.AsyncClient(
            base_url=config.base_url or BASE_URL,
            timeout=httpx.Timeout(30, connect=5),
            follow_redirects=False,
        )
        client = SimplifyTripClient(
            http,
            api_key=creds["apiKey"],
            secret_key=creds["secretKey"],
            checksum_key=creds["checksumKey"],
            cancel_path=creds.get("cancelPath") or DEFAULT_CANCEL_PATH,
        )
        return cls(
            client,
            clock=config.clock,
            currency=creds.get("currency") or "USD",
            webhook_secret=creds["checksumKey"],
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- catalogue ------------------------------------------------------------------------

    async def list_packages(self) -> Sequence[ProviderPackage]:
        packages: list[ProviderPackage] = []
        skip = 0
        for _ in range(MAX_PAGES):
            page = await self._client.list_products(skip=skip, take=PAGE_SIZE)
            for product in page.items:
                packages.extend(self._packages(product))
            skip += len(page.items)
            if not page.items or skip >= page.total:
                break
        return packages

    def _packages(self, product: Product) -> list[ProviderPackage]:
        if product.type and product.type.strip().lower() != "esim":
            return []
        out: list[ProviderPackage] = []
        for sku in product.skus:
            try:
                out.append(self._package(product, sku))
            except (ValueError, TypeError) as exc:
                log.warning("simplifytrip: skipping sku %s: %s", sku.sku, exc)
        return out

    def _package(self, product: Product, sku: Sku) -> ProviderPackage:
        if sku.price is None:
            raise ValueError("no price")
        if not sku.days or sku.days <= 0:
            raise ValueError(f"no validity: {sku.days!r}")
        family = (product.name.en if product.name else None) or product.spu
        name = ((sku.name.en if sku.name else None) or family).strip()
        coverage = _coverage(product, family)
        per_unit, daily = _data_bytes(sku)
        if len(coverage) == 1:
            kind, region = PackageKind.LOCAL, coverage[0].country_name
        elif "global" in family.lower():
            kind, region = PackageKind.GLOBAL, "Global"
        else:
            kind, region = PackageKind.REGIONAL, family.strip()
        currency = sku.currency or product.currency or self._currency
        return ProviderPackage(
            provider_code=sku.sku,
            name=name,
            kind=kind,
            region=region,
            coverage=coverage,
            data_bytes=per_unit,
            validity_days=sku.days,
            cost=money_e4(sku.price, currency),
            daily_data=daily,
        )

    # --- orders ---------------------------------------------------------------------------

    async def create_order(self, request: OrderRequest) -> Purchase:
        if request.quantity < 1:
            raise _refuse(LogicalReason.REJECTED, "quantity must be at least 1")
        # The upstream may not dedupe trackId (doc §5.3): a retry must find the first order.
        existing = await self.get_order(request.reference)
        if existing is not None:
            return existing
        body = CreateOrderRequest(
            track_id=request.reference,
            items=[
                OrderItemRequest(
                    sub_track_id=f"{request.reference}-1",
                    sku=request.provider_code,
                    quantity=request.quantity,
                )
            ],
        )
        try:
            created = await self._client.create_order(body)
        except LogicalError as exc:
            if not is_duplicate(exc):
                raise
            found = await self.get_order(request.reference)
            if found is None:
                raise TechnicalError(
                    f"duplicate trackId {request.reference!r} but no order found",
                    provider=PROVIDER,
                    raw=exc.raw,
                ) from exc
            return found
        if created.success is False:
            raise _refuse(LogicalReason.REJECTED, "create order answered success=false")
        # Provisioning is always asynchronous: the eSIMs arrive later (webhook or get_order).
        return Purchase(
            request.reference, PurchaseState.PENDING, provider_order_id=created.order_id
        )

    async def get_order(
        self, reference: str, provider_order_id: str | None = None
    ) -> Purchase | None:
        try:
            order = await self._client.get_order(reference)
        except LogicalError as exc:
            if exc.reason is LogicalReason.NOT_FOUND:
                return None
            raise
        if order.track_id and order.track_id != reference:
            raise TechnicalError(
                f"order lookup for {reference!r} answered trackId {order.track_id!r}",
                provider=PROVIDER,
            )
        return _purchase(reference, order)

    # --- usage ----------------------------------------------------------------------------

    async def query_usage(self, esims: Sequence[EsimRef]) -> Sequence[UsageReport]:
        if len(esims) > self.max_usage_batch:
            raise _refuse(
                LogicalReason.REJECTED, f"at most {self.max_usage_batch} eSIM per usage query"
            )
        reports: list[UsageReport] = []
        for ref in esims:
            info = await self._info(ref.iccid)
            if info is not None:
                reports.append(self._report(ref, info))
        return reports

    async def _info(self, iccid: str) -> EsimInfo | None:
        """The eSIM's information, else the physical SIM's; ``None`` when neither is known."""
        try:
            return await self._client.esim_info(iccid)
        except LogicalError as exc:
            if exc.reason is not LogicalReason.NOT_FOUND:
                raise
        try:
            return await self._client.get_sim_info(iccid)
        except LogicalError as exc:
            if exc.reason is LogicalReason.NOT_FOUND:
                return None  # unknown ICCIDs are simply absent
            raise

    def _report(self, ref: EsimRef, info: EsimInfo) -> UsageReport:
        raw: dict[str, str] = {}
        profile = _newest_log_status(info)
        if profile:
            raw["status"] = profile
        if info.sim_status.plan_status:
            raw["planStatus"] = info.sim_status.plan_status
        total: int | None = None
        product = info.product_info
        if product is not None and product.data:
            try:
                per, daily = _data_bytes(product)
                total = per
                if daily and per is not None and product.days:
                    total = daily_total(per, product.days)  # DAILY: the whole validity's cap
            except ValueError:
                log.warning("simplifytrip: unparseable allowance %r", product.data)
        order_id = ref.provider_order_id
        if info.order_info is not None and info.order_info.order_id:
            order_id = info.order_info.order_id
        last_usage = None
        for entry in info.usage_info_list:
            when = parse_time(entry.used_date)
            if when is not None and (entry.usage_amt or 0) > 0:
                last_usage = when if last_usage is None else max(last_usage, when)
        return UsageReport(
            esim=EsimRef(info.iccid, ref.provider_esim_id or info.iccid, order_id),
            used_bytes=max(info.sim_status.used_traffic or 0, 0),
            total_bytes=total,
            observed_at=self._clock.now(),
            raw_status=raw,
            activated_at=parse_time(info.sim_status.plan_start_time),
            expires_at=parse_time(info.sim_status.plan_end_time),
            last_usage_at=last_usage,
        )

    # --- top-up and cancel ----------------------------------------------------------------

    async def top_up(self, request: TopUpRequest) -> TopUpResult:
        raise _refuse(LogicalReason.NOT_ALLOWED, "SimplifyTrip has no top-up")

    async def cancel(self, esim: EsimRef) -> CancelResult:
        order_id = esim.provider_order_id
        if not order_id:
            info = await self._client.esim_info(esim.iccid)
            order_id = info.order_info.order_id if info.order_info else None
        if not order_id:
            raise _refuse(LogicalReason.NOT_FOUND, f"no order known for eSIM {esim.iccid}")
        order = await self._client.get_order(order_id)
        count = max(
            sum(len(item.esims) for item in order.items),
            sum(item.quantity or 0 for item in order.items),
        )
        if count > 1:
            # The upstream cancels whole orders: never take other eSIMs down with this one.
            return CancelResult(esim, cancelled=False, reason=f"order holds {count} eSIMs")
        try:
            answer = await self._client.cancel_order(order_id)
        except LogicalError as exc:
            if exc.reason is LogicalReason.NOT_FOUND:
                raise
            return CancelResult(esim, cancelled=False, reason=exc.message)
        status = (answer.status or "").strip().upper()
        if status and status not in _CANCELLED:
            return CancelResult(esim, cancelled=False, reason=f"order is {status}")
        return CancelResult(esim, cancelled=True)

    # --- webhooks (WebhookReceiver) -------------------------------------------------------

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, client_ip: str
    ) -> ProviderNotice:
        """A delivery verified by ``X-Simplify-Trip-Signature`` over the raw body (HMAC-SHA256
        with the checksumKey, doc §6). The upstream publishes no source addresses, so the
        signature is the only check. Unknown event types are accepted (a 4xx would stop the
        upstream's retries) and left to the confirming query."""
        if not verify_webhook(headers, body, self._webhook_secret):
            raise _refuse(LogicalReason.REJECTED, f"bad or missing {WEBHOOK_SIGNATURE_HEADER}")
        try:
            event = Webhook.model_validate(loads(body))
        except (ValueError, ValidationError):
            raise _refuse(LogicalReason.REJECTED, "not a SimplifyTrip webhook") from None
        kind = event.type.strip()
        if not kind:
            raise _refuse(LogicalReason.REJECTED, "webhook without a type")
        if kind not in _KNOWN_EVENTS:
            log.warning("simplifytrip: undocumented webhook type %r (id %s)", kind, event.id)
        event_id = (event.id or "").strip() or hashlib.sha256(body).hexdigest()
        data = event.data
        iccids = [data.iccid] + [e.iccid for item in data.items for e in item.esims]
        iccid = next((i.strip() for i in iccids if i and _ICCID.fullmatch(i.strip())), None)
        return ProviderNotice(
            event_id=event_id,
            kind=kind,
            reference=(data.track_id or "").strip() or None,  # our reference, sent as trackId
            iccid=iccid,
        )
