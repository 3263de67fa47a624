"""esimfly Business API as an upstream (also works against another esimgate instance).

Wire notes: /work/shared/providers/esimfly-upstream.md. Highlights:

* orders carry our reference as ``idempotency_key`` (a replay answers ``duplicate: true`` and
  charges nothing; 409 ``DUPLICATE_REQUEST`` while the first attempt runs → PENDING);
* KDDI-type packages answer ``pending_details`` and finish later (poll ``GET /esims/order``);
* units: catalogue GB, orders bytes, usage MB, top-up result GB — all normalised to bytes here;
* money is in the account currency (USD decimals, IQD integers) → exact 1/10000 units.

Limits of the upstream that shape this adapter (see the module functions for details):

* esimfly cannot be searched by ``idempotency_key``. ``get_order`` therefore uses the upstream
  ``orderReference`` remembered from ``create_order`` in this process; for a reference whose create
  was attempted here but whose outcome is unknown, it replays the create with the same key (a
  no-charge replay when the first attempt succeeded, the purchase the caller still wants when it
  failed). A reference never seen by this process cannot be looked up: :class:`TechnicalError`.
* top-ups have no idempotency upstream: results are remembered per reference, and after an
  ambiguous attempt the eSIM's total volume is compared with the one seen before the attempt.
* top-up packages are listed per ICCID, so the catalogue holds top-ups only for eSIMs this
  process has bought (one probe ICCID per base package), marked ``topup_for`` that package.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import httpx

from esimgate.clock import Clock
from esimgate.esims.units import bytes_from_gb, bytes_from_mb
from esimgate.providers.base import (
    CancelResult,
    Capability,
    Coverage,
    EsimProfile,
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
    Network,
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
from esimgate.providers.esimfly import wire
from esimgate.providers.esimfly.client import (
    PRODUCTION_BASE_URL,
    PROVIDER,
    EsimflyClient,
    InFlight,
)

if TYPE_CHECKING:
    from esimgate.providers.registry import AdapterConfig

MAX_PAGES = 500  # 7,000 packages at 100 a page is 70 pages; a guard against a looping upstream
_PENDING_ORDER = frozenset({"pending_details", "pending", "processing"})
_FAILED_ORDER = frozenset({"failed"})
_FLAG = re.compile(r"/([a-z]{2})\.(?:png|svg|jpe?g|webp)$", re.IGNORECASE)
_ICCID = re.compile(r"^[0-9A-Fa-f]{10,22}$")


def verify_webhook(headers: Mapping[str, str], raw_body: bytes, secret: str) -> bool:
    """Check ``X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`` in constant
    time, over the raw bytes, before anything parses the JSON."""
    header = next((v for k, v in headers.items() if k.lower() == "x-webhook-signature"), None)
    if not header or not secret:
        return False
    scheme, _, digest = header.strip().partition("=")
    if scheme.strip().lower() != "sha256" or not digest:
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), digest.strip().lower().encode("ascii", "replace"))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value.strip() if value and value.strip() else None


def _text(data: Mapping[str, object], *names: str) -> str | None:
    """The first non-empty scalar among ``names`` (esimfly mixes snake and camel case)."""
    for name in names:
        value = data.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, str | int):
            text = str(value).strip()
            if text:
                return text
    return None


def to_money(amount: Decimal, currency: str) -> Money:
    """An exact decimal amount → 1/10000 units (sub-1/10000 digits, never seen, round half up)."""
    return Money.from_decimal(amount, currency)


def _per_unit(total: Decimal | None, quantity: int, currency: str | None) -> Money | None:
    if total is None or not currency or quantity < 1:
        return None
    money = to_money(total, currency)
    if money.amount_e4 % quantity:
        return None
    return Money(money.amount_e4 // quantity, money.currency)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _country_code(*candidates: str | None) -> str | None:
    for candidate in candidates:
        if not candidate:
            continue
        text = candidate.strip()
        if len(text) == 2 and text.isalpha():
            return text.upper()
        match = _FLAG.search(text)
        if match:
            return match.group(1).upper()
    return None


def _coverage(package: wire.Package) -> tuple[Coverage, ...]:
    found: dict[str, Coverage] = {}
    for location in package.location_network_list:
        code = _country_code(location.location_code, location.location_logo)
        if code is None or code in found:
            continue
        networks = tuple(
            Network(op.operator_name, "", "", (op.network_type,) if op.network_type else ())
            for op in location.operator_list
            if op.operator_name
        )
        found[code] = Coverage(code, location.location_name or code, networks)
    for network in package.networks:
        code = _country_code(network.country_iso2)
        if code is None:
            continue
        entry = found.get(code) or Coverage(code, network.country_name or code)
        if network.network_name:
            radio = (network.network_type,) if network.network_type else ()
            sighting = Network(
                network.network_name, network.mcc_code or "", network.mnc_code or "", radio
            )
            entry = Coverage(entry.country_code, entry.country_name, (*entry.networks, sighting))
        found[code] = entry
    names = [c for c in package.countries if isinstance(c, str)]
    for position, raw in enumerate(package.country_codes):
        code = _country_code(raw)
        if code is not None and code not in found:
            name = names[position] if position < len(names) else code
            found[code] = Coverage(code, name)
    if not found:  # a local package without a network list: its flag names the country
        code = _country_code(package.flag_url)
        if code is not None:
            found[code] = Coverage(code, package.region or code)
    return tuple(found.values())


def _kind(package: wire.Package, coverage: tuple[Coverage, ...]) -> PackageKind:
    try:
        return PackageKind((package.type or "").strip().lower())
    except ValueError:
        return PackageKind.LOCAL if len(coverage) == 1 else PackageKind.REGIONAL


def _package(
    package: wire.Package, *, is_topup: bool = False, topup_for: frozenset[str] = frozenset()
) -> ProviderPackage:
    coverage = _coverage(package)
    unlimited = package.is_unlimited
    data_bytes = None
    if not unlimited and package.data_amount_gb is not None:
        data_bytes = bytes_from_gb(package.data_amount_gb)
    features = package.features or wire.Features()
    region = package.region or (coverage[0].country_name if len(coverage) == 1 else "")
    return ProviderPackage(
        provider_code=package.package_code,
        name=package.name,
        kind=_kind(package, coverage),
        region=region,
        coverage=coverage,
        data_bytes=data_bytes,
        validity_days=package.validity_days,
        cost=to_money(package.cost, package.currency),
        voice_minutes=features.voice_minutes or 0,
        sms_count=features.sms_count or 0,
        is_topup=is_topup,
        rechargeable=bool(features.is_rechargeable),
        renewable=package.is_recurring,
        topup_for=topup_for,
    )


def _profile(esim: wire.OrderEsim) -> EsimProfile | None:
    if not esim.iccid or esim.is_pending:
        return None
    lpa = esim.lpa_string or ""
    parts = lpa.split("$")
    smdp = parts[1] if len(parts) > 2 else ""
    matching = parts[2] if len(parts) > 2 else ""
    confirm = len(parts) > 4 and parts[4] == "1"
    return EsimProfile(esim.iccid, esim.iccid, smdp, matching, lpa, confirm)


def _profiles(esims: Sequence[wire.OrderEsim]) -> tuple[EsimProfile, ...] | None:
    """The profiles, or ``None`` while any of them is still pending."""
    profiles = [_profile(esim) for esim in esims]
    if not profiles or any(p is None for p in profiles):
        return None
    return tuple(p for p in profiles if p is not None)


@dataclass(frozen=True, slots=True)
class _TopUpAttempt:
    iccid: str
    total_before: int | None


class EsimflyProvider:
    kind = "esimfly"
    capabilities = frozenset(
        {
            Capability.CATALOGUE,
            Capability.ORDER,
            Capability.ASYNC_PROVISIONING,
            # No ORDER_LOOKUP: esimfly cannot be searched by our idempotency key, so an order is
            # found only through the esimfly order id esimgate stored (or this process's memory).
            Capability.USAGE,
            Capability.LIVE_STATUS,
            Capability.TOPUP,
            Capability.CANCEL,
        }
    )
    max_usage_batch = 1  # one ICCID per usage query
    requests_per_second = 100 / 60  # published: ~100/min (1,000/h, 10,000/day) per key

    def __init__(
        self,
        client: EsimflyClient,
        *,
        callback_url: str | None = None,
        live_status: bool = True,
        clock: Clock | None = None,
        webhook_secret: str = "",
    ) -> None:
        self.client = client
        # ``whsec_…`` from PUT /webhooks (shown once): signs X-Webhook-Signature.
        self._webhook_secret = webhook_secret
        if webhook_secret:
            self.capabilities = self.capabilities | {Capability.WEBHOOKS}
        self.callback_url = callback_url
        self.live_status = live_status
        self.clock: Clock = clock or client.clock
        # In-process memory the upstream cannot give back (see the module doc).
        self._orders: dict[str, str] = {}  # our reference → esimfly orderReference
        self._attempts: dict[str, OrderRequest] = {}  # creates sent, outcome maybe unknown
        self._probe: dict[str, str] = {}  # base package code → an ICCID bought with it
        self._topups: dict[str, TopUpResult] = {}
        self._topup_attempts: dict[str, _TopUpAttempt] = {}

    @classmethod
    def from_config(cls, config: AdapterConfig) -> EsimflyProvider:
        creds = config.credentials

        def credential(*names: str) -> str:
            for name in names:
                if creds.get(name):
                    return creds[name]
            raise ValueError(f"esimfly account {config.name!r} needs credential {names[0]!r}")

        access_code = credential("access_code", "accessCode", "RT-AccessCode")
        secret_key = credential("secret_key", "secretKey")
        http = httpx.AsyncClient(
            base_url=(config.base_url or PRODUCTION_BASE_URL).rstrip("/") + "/",
            timeout=httpx.Timeout(30, connect=5),
            follow_redirects=False,
        )
        client = EsimflyClient(http, access_code, secret_key, clock=config.clock)
        live = creds.get("live_status", "true").strip().lower() not in ("false", "0", "no")
        return cls(
            client,
            callback_url=creds.get("callback_url") or None,
            live_status=live,
            clock=config.clock,
            webhook_secret=creds.get("webhook_secret") or creds.get("webhookSecret") or "",
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- catalogue ------------------------------------------------------------------------------

    async def list_packages(self) -> Sequence[ProviderPackage]:
        packages: dict[str, ProviderPackage] = {}
        page = 1
        while page <= MAX_PAGES:
            answer = await self.client.list_packages(page=page, limit=100)
            for item in answer.packages:
                packages.setdefault(item.package_code, _package(item))
            pages = answer.pagination.total_pages if answer.pagination else None
            if not answer.packages or pages is None or page >= pages:
                break
            page += 1
        for base_code, iccid in list(self._probe.items()):
            try:
                topups = await self.list_topups(iccid, base_code)
            except LogicalError:
                continue  # that eSIM is gone or takes no top-ups any more
            for topup in topups:
                known = packages.get(topup.provider_code)
                if known is not None and known.is_topup:
                    topup = replace(topup, topup_for=known.topup_for | topup.topup_for)
                packages[topup.provider_code] = topup
        return list(packages.values())

    async def list_topups(self, iccid: str, base_code: str | None = None) -> list[ProviderPackage]:
        """The top-up packages esimfly offers for one eSIM (codes are per eSIM)."""
        found: list[ProviderPackage] = []
        page = 1
        topup_for = frozenset({base_code}) if base_code else frozenset()
        while page <= MAX_PAGES:
            answer = await self.client.topup_packages(iccid, page=page, limit=100)
            found += [_package(p, is_topup=True, topup_for=topup_for) for p in answer.packages]
            pages = answer.pagination.total_pages if answer.pagination else None
            if not answer.packages or pages is None or page >= pages:
                break
            page += 1
        return found

    # --- orders ---------------------------------------------------------------------------------

    async def create_order(self, request: OrderRequest) -> Purchase:
        self._attempts[request.reference] = request
        try:
            created = await self.client.create_order(
                request.provider_code, request.quantity, request.reference, self.callback_url
            )
        except InFlight:
            return Purchase(request.reference, PurchaseState.PENDING)
        except LogicalError:
            self._attempts.pop(request.reference, None)  # definite failure: the key is reusable
            raise
        except TechnicalError as exc:
            if exc.committed is False:
                self._attempts.pop(request.reference, None)
            raise
        purchase = self._created(request, created)
        self._attempts.pop(request.reference, None)
        return purchase

    def _created(self, request: OrderRequest, created: wire.OrderCreated) -> Purchase:
        if created.order_reference:
            self._orders[request.reference] = created.order_reference
        cost = _per_unit(
            created.final_price if created.final_price is not None else created.amount,
            request.quantity,
            created.currency,
        )
        status = (created.status or "").strip().lower()
        if status in _FAILED_ORDER:
            return Purchase(
                request.reference,
                PurchaseState.FAILED,
                created.order_reference,
                failure_reason=created.message or "esimfly order failed",
            )
        pending = created.is_pending or status in _PENDING_ORDER
        profiles = None if pending else _profiles(created.esims)
        if profiles is None:
            return Purchase(
                request.reference, PurchaseState.PENDING, created.order_reference, unit_cost=cost
            )
        self._remember_probe(request.provider_code, profiles)
        return Purchase(
            request.reference,
            PurchaseState.COMPLETED,
            created.order_reference,
            profiles,
            unit_cost=cost,
        )

    def _remember_probe(self, package_code: str | None, profiles: Sequence[EsimProfile]) -> None:
        if package_code and profiles:
            self._probe[package_code] = profiles[0].iccid

    async def get_order(
        self, reference: str, provider_order_id: str | None = None
    ) -> Purchase | None:
        order_reference = self._orders.get(reference) or provider_order_id
        if order_reference is None:
            attempt = self._attempts.get(reference)
            if attempt is None:
                raise TechnicalError(
                    f"esimfly cannot be searched by idempotency key, and order {reference!r} was "
                    "not created by this process: reconcile it by hand (GET /orders)",
                    provider=PROVIDER,
                )
            # Same idempotency key: a no-charge replay if the first attempt went through.
            return await self.create_order(attempt)
        try:
            detail = await self.client.get_order(order_reference)
        except LogicalError as exc:
            if exc.reason is LogicalReason.NOT_FOUND:
                return None
            raise
        return self._detail(reference, detail)

    def _detail(self, reference: str, detail: wire.OrderDetail) -> Purchase:
        status = (detail.status or "").strip().lower()
        quantity = max(len(detail.esims), 1)
        cost = _per_unit(
            detail.final_price if detail.final_price is not None else detail.amount,
            quantity,
            detail.currency,
        )
        if status in _FAILED_ORDER:
            return Purchase(
                reference,
                PurchaseState.FAILED,
                detail.order_reference,
                unit_cost=cost,
                failure_reason="esimfly order failed",
            )
        esims = detail.esims or ([detail.esim] if detail.esim is not None else [])
        profiles = None if status in _PENDING_ORDER else _profiles(esims)
        if profiles is None:
            return Purchase(
                reference, PurchaseState.PENDING, detail.order_reference, unit_cost=cost
            )
        self._remember_probe(detail.package_code, profiles)
        return Purchase(
            reference, PurchaseState.COMPLETED, detail.order_reference, profiles, unit_cost=cost
        )

    # --- usage ----------------------------------------------------------------------------------

    async def query_usage(self, esims: Sequence[EsimRef]) -> Sequence[UsageReport]:
        reports: list[UsageReport] = []
        seen: set[str] = set()
        for ref in esims:
            if ref.iccid in seen:
                continue
            seen.add(ref.iccid)
            report = await self._usage(ref)
            if report is not None:
                reports.append(report)
        return reports

    async def _usage(self, ref: EsimRef) -> UsageReport | None:
        try:
            usage = await self.client.usage(ref.iccid)
        except LogicalError as exc:
            if exc.reason is LogicalReason.NOT_FOUND:
                return None  # unknown eSIMs are simply absent
            raise
        data = usage.data
        total = None
        if not data.is_unlimited and data.total_mb is not None:
            total = bytes_from_mb(data.total_mb)
        used = bytes_from_mb(data.used_mb) if data.used_mb is not None else 0
        raw: dict[str, str] = {}
        if usage.esim.status:
            raw["status"] = usage.esim.status
        validity = usage.validity or wire.Validity()
        activated = _parse_time(validity.activated_at)
        expires = _parse_time(validity.expires_at)
        last_usage = None
        sighting = None
        model = imei = None
        if self.live_status:
            live = await self._live(ref.iccid)
            if live is not None:
                for name in ("status", "esim_status", "smdp_status", "profile", "profile_status"):
                    value = getattr(live, name)
                    if value:
                        raw[name] = value
                activated = activated or _parse_time(live.activation_date)
                expires = expires or _parse_time(live.expiry_date)
                last_usage = _parse_time(live.last_usage_date)
                net = live.last_network
                if net is not None and net.operator:
                    sighting = NetworkSighting(
                        net.operator,
                        net.mcc or "",
                        net.mnc or "",
                        (net.country_iso2 or "").upper(),
                        net.connection_type or "",
                    )
                if live.device is not None:
                    model, imei = live.device.model, live.device.imei
        esim = EsimRef(ref.iccid, ref.provider_esim_id or ref.iccid, ref.provider_order_id)
        return UsageReport(
            esim=esim,
            used_bytes=used,
            total_bytes=total,
            observed_at=self.clock.now(),
            raw_status=raw,
            activated_at=activated,
            expires_at=expires,
            last_usage_at=last_usage,
            last_network=sighting,
            device_model=model,
            device_imei=imei,
        )

    async def _live(self, iccid: str) -> wire.LiveStatus | None:
        """Live detail from ``POST /esims/status``; absent when this profile does not offer it."""
        try:
            return await self.client.live_status(iccid)
        except LogicalError:
            return None

    # --- top-ups --------------------------------------------------------------------------------

    async def top_up(self, request: TopUpRequest) -> TopUpResult:
        done = self._topups.get(request.reference)
        if done is not None:
            return done
        iccid = request.esim.iccid
        attempt = self._topup_attempts.get(request.reference)
        current_total = await self._current_total(iccid)
        if attempt is not None and _grew(attempt.total_before, current_total):
            # The ambiguous earlier attempt went through: esimfly has no idempotency here.
            result = TopUpResult(
                request.reference, PurchaseState.COMPLETED, total_bytes=current_total
            )
            self._topups[request.reference] = result
            self._topup_attempts.pop(request.reference, None)
            return result
        offered = {p.provider_code: p for p in await self.list_topups(iccid)}
        if request.provider_code not in offered:
            raise LogicalError(
                LogicalReason.INVALID_PACKAGE,
                f"esimfly offers no top-up {request.provider_code!r} for eSIM {iccid}",
                provider=PROVIDER,
            )
        self._topup_attempts[request.reference] = _TopUpAttempt(iccid, current_total)
        try:
            created = await self.client.topup_order(iccid, request.provider_code, request.quantity)
        except LogicalError:
            self._topup_attempts.pop(request.reference, None)
            raise
        except TechnicalError as exc:
            if exc.committed is False:
                self._topup_attempts.pop(request.reference, None)
            raise
        self._topup_attempts.pop(request.reference, None)
        data = created.esim_data or wire.TopUpEsimData()
        total = None
        if data.new_total_volume_gb is not None:
            total = bytes_from_gb(data.new_total_volume_gb)
        status = (created.status or "completed").strip().lower()
        cost = _per_unit(created.amount, request.quantity, created.currency)
        if cost is None:
            cost = offered[request.provider_code].cost
        result = TopUpResult(
            request.reference,
            PurchaseState.FAILED if status in _FAILED_ORDER else PurchaseState.COMPLETED,
            unit_cost=cost,
            total_bytes=total,
        )
        self._topups[request.reference] = result
        return result

    async def _current_total(self, iccid: str) -> int | None:
        usage = await self.client.usage(iccid)
        if usage.data.is_unlimited or usage.data.total_mb is None:
            return None
        return bytes_from_mb(usage.data.total_mb)

    # --- cancel ---------------------------------------------------------------------------------

    async def cancel(self, esim: EsimRef) -> CancelResult:
        try:
            data = await self.client.cancel(esim.iccid)
        except LogicalError as exc:
            if exc.upstream_code == "ALREADY_CANCELLED":
                return CancelResult(esim, cancelled=True, reason="already cancelled")
            if exc.upstream_code == "NOT_ELIGIBLE":
                return CancelResult(esim, cancelled=False, reason=exc.message)
            raise
        refund = None
        if data.refunded_amount is not None and data.currency:
            refund = to_money(data.refunded_amount, data.currency)
        cancelled = data.cancelled_esims is None or data.cancelled_esims > 0
        return CancelResult(esim, cancelled=cancelled, refund=refund)

    # --- webhooks (WebhookReceiver) --------------------------------------------------------------

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, client_ip: str
    ) -> ProviderNotice:
        """An esimfly delivery, verified by ``X-Webhook-Signature`` over the raw bytes before
        the JSON is read (esimfly signs; no source-IP list is published, so ``client_ip`` is not
        used). The id is ``X-Webhook-Id`` (stable across the upstream's retries), else the body's
        SHA-256. The body's ``order_reference`` is esimfly's own order id: it becomes our reference
        only through the create this process remembers (or an ``idempotency_key`` echoed back)."""
        if not self._webhook_secret:
            raise _rejected("no webhook_secret configured for this esimfly account")
        if not verify_webhook(headers, body, self._webhook_secret):
            raise _rejected("bad or missing X-Webhook-Signature")
        try:
            payload = json.loads(body)
        except ValueError:
            raise _rejected("not an esimfly webhook (unparseable body)") from None
        if not isinstance(payload, dict):
            raise _rejected("not an esimfly webhook (no JSON object)")
        data = payload.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise _rejected("not an esimfly webhook (data is not an object)")
        kind = _text(payload, "event") or _header(headers, "x-webhook-event")
        if not kind:
            raise _rejected("not an esimfly webhook (no event)")
        event_id = _header(headers, "x-webhook-id") or hashlib.sha256(body).hexdigest()
        reference = _text(data, "idempotency_key", "idempotencyKey")
        upstream_ref = _text(data, "order_reference", "orderReference")
        iccid = _text(data, "iccid")
        return ProviderNotice(
            event_id=event_id[:200],
            kind=kind[:100],
            reference=reference if reference is None or len(reference) <= 200 else None,
            # esimfly's webhooks name its own order; esimgate maps it through the stored id.
            provider_order_id=upstream_ref
            if upstream_ref is not None and len(upstream_ref) <= 128
            else None,
            iccid=iccid if iccid is not None and _ICCID.match(iccid) else None,
        )


def _rejected(message: str) -> LogicalError:
    return LogicalError(LogicalReason.REJECTED, message, provider=PROVIDER)


def _grew(before: int | None, now: int | None) -> bool:
    return before is not None and now is not None and now > before
