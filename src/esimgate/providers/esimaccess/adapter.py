"""eSIM Access (Redtea platform) as an esimgate provider.

Wire facts this adapter relies on (/work/shared/providers/esimaccess.md): every call is a POST;
money is integer × 10 000 (the port's own unit, so prices pass through exactly); volumes are
bytes; ``transactionId`` de-duplicates orders and top-ups, so our reference goes there; profiles
are allocated asynchronously after ``/esim/order`` and ``/esim/query`` answers ``200010`` until
they are ready; eSIMs are keyed by ``esimTranNo`` because ICCIDs are reused; usage lags 2–3 h.

Finding an order by our reference: the upstream has no documented lookup by ``transactionId``.
esimgate passes the stored ``orderNo`` to ``get_order`` when the create answer reached it; we
also remember ``reference → orderNo`` for orders this process placed, and otherwise scan
``/esim/query`` over a recent time window for eSIMs carrying that ``transactionId`` (which only
finds orders whose profiles are already allocated).

Suspend and resume (``/esim/suspend``, ``/esim/unsuspend``, §5.5) name the eSIM by
``esimTranNo`` only: the notes accept an ``iccid`` instead, but ICCIDs are reused. The upstream
documents neither the states that allow them nor what a repeat answers, so both are made safe
to repeat here, judged by the state the eSIM ends in rather than by the call:

* ``suspend`` of an eSIM that is already ``SUSPENDED`` succeeds and changes nothing. If the
  upstream refuses it (``200002``), the eSIM is queried; when it reads ``SUSPENDED`` the refusal
  was only "already done" and is swallowed, otherwise ``LogicalError(NOT_ALLOWED)`` stands (a
  cancelled, revoked or expired eSIM cannot be suspended).
* ``resume`` of an eSIM that is not suspended and still in service (``GOT_RESOURCE``,
  ``IN_USE``, ``USED_UP``) succeeds and changes nothing, by the same query after a refusal; a
  cancelled, revoked or expired eSIM stays ``NOT_ALLOWED``.
* If that follow-up query fails, its ``TechnicalError`` is raised: nothing changed upstream, and
  a retry settles it.

An unknown eSIM is ``LogicalError(NOT_FOUND)`` (``310403``). After a suspend, ``/esim/query``
reports ``esimStatus = SUSPENDED``, which :meth:`query_usage` passes on in ``raw_status``.

The balance (``/balance/query``, §5.7) is an integer × 10 000, the port's own unit. Its
currency is not documented: it is the one the answer names if it ever does, else the single
currency of the catalogue once :meth:`list_packages` has read it, else USD (the account
currency of every documented example).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Final

import httpx

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
    Network,
    OrderRequest,
    PackageKind,
    ProviderNotice,
    ProviderPackage,
    Purchase,
    PurchaseState,
    TopUpRequest,
    TopUpResult,
    UsageReport,
)
from esimgate.providers.esimaccess import wire
from esimgate.providers.esimaccess.client import KIND, EsimAccessClient, StillAllocating
from esimgate.providers.registry import AdapterConfig

log = logging.getLogger(__name__)

BASE_URL: Final = "https://api.esimaccess.com/api/v1/open"
MAX_ORDER_COUNT: Final = 30  # eSIMs per batch order (§5.2)
PAGE_SIZE: Final = 100  # /esim/query accepts 5–500
MAX_LOOKUP_PAGES: Final = 20
REMEMBERED_ORDERS: Final = 10_000
# esimStatus words meaning "bought, profile not ready yet".
_ALLOCATING: Final = frozenset({"CREATE", "PAYING", "PAID", "GETTING_RESOURCE"})
_GLOBAL_CODES: Final = frozenset({"!GL", "GL", "GLOBAL"})
_SUSPENDED: Final = frozenset({"SUSPENDED"})
# esimStatus words of an eSIM that is not suspended and whose service can run: resume() of one
# has nothing to undo.
_IN_SERVICE: Final = frozenset({"GOT_RESOURCE", "IN_USE", "USED_UP"})
DEFAULT_CURRENCY: Final = "USD"


def _credential(credentials: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = credentials.get(name)
        if value:
            return value
    return None


def _lpa_parts(ac: str) -> tuple[str, str]:
    """``LPA:1$<SM-DP+>$<matching id>`` → (SM-DP+ address, matching id)."""
    parts = ac.split("$")
    if len(parts) >= 3 and parts[0].upper() == "LPA:1":
        return parts[1], parts[2]
    return "", ""


def _refuse(reason: LogicalReason, message: str) -> LogicalError:
    return LogicalError(reason, message, provider=KIND)


class EsimAccessProvider:
    """The eSIM Access Open API v1 behind the provider port."""

    kind = KIND
    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.CATALOGUE,
            Capability.ORDER,
            Capability.ASYNC_PROVISIONING,
            Capability.ORDER_LOOKUP,
            Capability.USAGE,
            Capability.BATCH_USAGE,
            Capability.TOPUP,
            Capability.CANCEL,
            Capability.SUSPEND,
            Capability.WEBHOOKS,
        }
    )
    max_usage_batch = 10  # /esim/usage/query takes up to 10 esimTranNos
    requests_per_second = 8.0  # published: 8 req/s per account, all endpoints together

    def __init__(
        self,
        client: EsimAccessClient,
        *,
        clock: Clock | None = None,
        lookup_days: int = 30,
    ) -> None:
        self._client = client
        self._clock: Clock = clock or SystemClock()
        self._lookup_window = timedelta(days=lookup_days)
        self._orders: OrderedDict[str, tuple[str, Money | None]] = OrderedDict()
        self._prices: dict[str, Money] = {}
        self._currency = DEFAULT_CURRENCY

    @classmethod
    def from_config(cls, config: AdapterConfig) -> EsimAccessProvider:
        credentials = config.credentials
        access_code = _credential(credentials, "access_code", "accessCode", "AccessCode")
        if access_code is None:
            raise ValueError("eSIM Access needs the 'access_code' credential (RT-AccessCode)")
        secret_key = _credential(credentials, "secret_key", "secretKey", "SecretKey")
        http = httpx.AsyncClient(
            base_url=(config.base_url or BASE_URL).rstrip("/"),
            timeout=httpx.Timeout(30, connect=5),
            follow_redirects=False,
        )
        client = EsimAccessClient(http, access_code, secret_key, clock=config.clock)
        lookup_days = int(credentials.get("lookup_days", "30"))
        return cls(client, clock=config.clock, lookup_days=lookup_days)

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- catalogue --------------------------------------------------------------------------

    async def list_packages(self) -> Sequence[ProviderPackage]:
        packages: dict[str, ProviderPackage] = {}
        for type_ in ("BASE", "TOPUP"):
            for item in await self._client.list_packages(type_=type_):
                package = _package(item, is_topup=type_ == "TOPUP")
                if package is not None:
                    packages.setdefault(package.provider_code, package)
        self._prices = {code: package.cost for code, package in packages.items()}
        currencies = {package.cost.currency for package in packages.values()}
        if len(currencies) == 1:  # the account's currency, as its prices show it
            self._currency = currencies.pop()
        return list(packages.values())

    # --- orders -----------------------------------------------------------------------------

    async def create_order(self, request: OrderRequest) -> Purchase:
        if not 1 <= request.quantity <= MAX_ORDER_COUNT:
            raise _refuse(LogicalReason.REJECTED, f"quantity must be 1 to {MAX_ORDER_COUNT}")
        expected = request.expected_unit_cost
        placed = await self._client.order(
            request.reference,
            request.provider_code,
            request.quantity,
            unit_price_e4=expected.amount_e4 if expected is not None else None,
        )
        unit_cost = expected or self._prices.get(request.provider_code)
        self._remember(request.reference, placed.order_no, unit_cost)
        try:
            return await self._purchase(request.reference, placed.order_no, unit_cost)
        except Exception as exc:  # the order is placed: any follow-up failure means "pending"
            log.info("eSIM Access order %s placed; details not read yet: %r", placed.order_no, exc)
            return Purchase(
                request.reference, PurchaseState.PENDING, placed.order_no, unit_cost=unit_cost
            )

    async def get_order(
        self, reference: str, provider_order_id: str | None = None
    ) -> Purchase | None:
        remembered = self._orders.get(reference)
        if remembered is not None:
            order_no, unit_cost = remembered
            return await self._purchase(reference, order_no, unit_cost)
        if provider_order_id:  # esimgate stored the orderNo: no need to search for it
            self._remember(reference, provider_order_id, None)
            return await self._purchase(reference, provider_order_id, None)
        order_no_found = await self._find_order_no(reference)
        if order_no_found is None:
            return None
        self._remember(reference, order_no_found, None)
        return await self._purchase(reference, order_no_found, None)

    def _remember(self, reference: str, order_no: str, unit_cost: Money | None) -> None:
        self._orders[reference] = (order_no, unit_cost)
        self._orders.move_to_end(reference)
        while len(self._orders) > REMEMBERED_ORDERS:
            self._orders.popitem(last=False)

    async def _purchase(self, reference: str, order_no: str, unit_cost: Money | None) -> Purchase:
        pending = Purchase(reference, PurchaseState.PENDING, order_no, unit_cost=unit_cost)
        try:
            esims = await self._order_esims(order_no)
        except StillAllocating:
            return pending
        profiles = [_profile(e) for e in esims]
        if not profiles or any(p is None for p in profiles):
            return pending
        return Purchase(
            reference,
            PurchaseState.COMPLETED,
            order_no,
            esims=tuple(p for p in profiles if p is not None),
            unit_cost=unit_cost,
        )

    async def _order_esims(self, order_no: str) -> list[wire.Esim]:
        esims: list[wire.Esim] = []
        for page in range(1, MAX_LOOKUP_PAGES + 1):
            obj = await self._client.query_esims(
                order_no=order_no, page_num=page, page_size=PAGE_SIZE
            )
            batch = obj.esim_list or []
            esims.extend(batch)
            total = obj.pager.total if obj.pager is not None else None
            if not batch or len(batch) < PAGE_SIZE or (total is not None and len(esims) >= total):
                break
        return esims

    async def _find_order_no(self, reference: str) -> str | None:
        """Scan recent eSIMs for our transactionId (only allocated orders are visible)."""
        now = self._clock.now()
        start = (now - self._lookup_window).strftime("%Y-%m-%dT%H:%M+00:00")
        end = (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M+00:00")
        for page in range(1, MAX_LOOKUP_PAGES + 1):
            try:
                obj = await self._client.query_esims(
                    start_time=start, end_time=end, page_num=page, page_size=500
                )
            except StillAllocating:
                return None
            batch = obj.esim_list or []
            for esim in batch:
                if esim.transaction_id == reference and esim.order_no:
                    return esim.order_no
            total = obj.pager.total if obj.pager is not None else None
            if not batch or len(batch) < 500 or (total is not None and page * 500 >= total):
                break
        return None

    # --- usage ------------------------------------------------------------------------------

    async def query_usage(self, esims: Sequence[EsimRef]) -> Sequence[UsageReport]:
        if len(esims) > self.max_usage_batch:
            raise _refuse(
                LogicalReason.REJECTED, f"at most {self.max_usage_batch} eSIMs per usage query"
            )
        tran_nos = [ref.provider_esim_id for ref in esims if ref.provider_esim_id]
        usage: dict[str, wire.Usage] = {}
        if tran_nos:
            listing = await self._client.usage(tran_nos)
            usage = {u.esim_tran_no: u for u in listing.esim_usage_list}
        reports: dict[str, UsageReport] = {}
        for ref in esims:
            esim = await self._one_esim(ref)
            if esim is None or esim.esim_tran_no in reports:
                continue
            reports[esim.esim_tran_no] = self._report(esim, usage.get(esim.esim_tran_no), ref)
        return list(reports.values())

    async def _one_esim(self, ref: EsimRef) -> wire.Esim | None:
        if ref.provider_esim_id:
            found = await self._client.query_esims(esim_tran_no=ref.provider_esim_id, page_size=5)
            candidates = [
                e for e in found.esim_list or [] if e.esim_tran_no == ref.provider_esim_id
            ]
        else:  # ICCIDs are reused: narrow by order when we can
            found = await self._client.query_esims(iccid=ref.iccid, page_size=50)
            candidates = [e for e in found.esim_list or [] if e.iccid == ref.iccid]
            if ref.provider_order_id:
                candidates = [e for e in candidates if e.order_no == ref.provider_order_id]
        return candidates[0] if candidates else None

    def _report(self, esim: wire.Esim, usage: wire.Usage | None, ref: EsimRef) -> UsageReport:
        used = usage.data_usage if usage and usage.data_usage is not None else esim.order_usage
        total = esim.total_volume
        if usage is not None and usage.total_data is not None:
            total = usage.total_data
        raw = {
            name: value
            for name, value in (("esimStatus", esim.esim_status), ("smdpStatus", esim.smdp_status))
            if value is not None
        }
        return UsageReport(
            esim=EsimRef(esim.iccid, esim.esim_tran_no, esim.order_no or ref.provider_order_id),
            used_bytes=max(used or 0, 0),
            total_bytes=total,
            observed_at=self._clock.now(),
            raw_status=raw,
            activated_at=wire.parse_time(esim.activate_time),
            expires_at=wire.parse_time(esim.expired_time),
            last_usage_at=wire.parse_time(usage.last_update_time) if usage else None,
        )

    # --- top-up and cancel ------------------------------------------------------------------

    async def top_up(self, request: TopUpRequest) -> TopUpResult:
        if request.quantity != 1:
            raise _refuse(LogicalReason.REJECTED, "eSIM Access tops up one package per call")
        if not request.esim.provider_esim_id:
            raise _refuse(LogicalReason.REJECTED, "eSIM Access top-ups need the esimTranNo")
        done = await self._client.topup(
            request.reference, request.esim.provider_esim_id, request.provider_code
        )
        return TopUpResult(
            reference=request.reference,
            state=PurchaseState.COMPLETED,
            unit_cost=self._prices.get(request.provider_code),
            total_bytes=done.total_volume,
            expires_at=wire.parse_time(done.expired_time),
        )

    async def cancel(self, esim: EsimRef) -> CancelResult:
        if not esim.provider_esim_id:
            raise _refuse(LogicalReason.REJECTED, "eSIM Access cancels need the esimTranNo")
        try:
            await self._client.cancel(esim.provider_esim_id)
        except LogicalError as exc:
            if exc.reason is LogicalReason.NOT_ALLOWED:
                return CancelResult(esim, cancelled=False, reason="not cancellable in its state")
            raise
        # Full price is refunded to the balance (§5.4); the amount is not in the answer.
        return CancelResult(esim, cancelled=True)

    # --- suspend and resume (Suspender) -----------------------------------------------------

    async def suspend(self, esim: EsimRef) -> None:
        """Suspend the eSIM's data service; a no-op when it is already suspended."""
        if not esim.provider_esim_id:
            raise _refuse(LogicalReason.REJECTED, "eSIM Access suspends need the esimTranNo")
        try:
            await self._client.suspend(esim.provider_esim_id)
        except LogicalError as exc:
            if exc.reason is LogicalReason.NOT_ALLOWED and await self._status_in(esim, _SUSPENDED):
                return  # already suspended: the state asked for holds
            raise

    async def resume(self, esim: EsimRef) -> None:
        """Unsuspend the eSIM; a no-op when it is in service and not suspended."""
        if not esim.provider_esim_id:
            raise _refuse(LogicalReason.REJECTED, "eSIM Access unsuspends need the esimTranNo")
        try:
            await self._client.unsuspend(esim.provider_esim_id)
        except LogicalError as exc:
            if exc.reason is LogicalReason.NOT_ALLOWED and await self._status_in(esim, _IN_SERVICE):
                return  # not suspended and still in service: nothing to undo
            raise

    async def _status_in(self, ref: EsimRef, wanted: frozenset[str]) -> bool:
        """Whether the eSIM's current ``esimStatus`` is one of ``wanted``."""
        try:
            esim = await self._one_esim(ref)
        except StillAllocating:
            return False
        return esim is not None and (esim.esim_status or "").strip().upper() in wanted

    # --- balance (BalanceReader) ------------------------------------------------------------

    async def balance(self) -> Money:
        """Our prepaid balance at eSIM Access, exactly (× 10 000 on the wire and in the port)."""
        answer = await self._client.balance()
        currency = (answer.currency_code or "").strip().upper() or self._currency
        return Money(answer.balance, currency)

    # --- webhooks (WebhookReceiver) ---------------------------------------------------------

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, client_ip: str
    ) -> ProviderNotice:
        """A notification, trusted only for its sender address: eSIM Access does not sign
        webhooks (§6), so anything not from a published sender IP is refused. De-duplicated on
        ``notifyId``; older events have none, so the raw body's SHA-256 stands in."""
        if not is_webhook_source(client_ip):
            raise _refuse(LogicalReason.REJECTED, "not from an eSIM Access webhook sender IP")
        return parse_notification(body)


# --- mapping helpers ---------------------------------------------------------------------------


def _profile(esim: wire.Esim) -> EsimProfile | None:
    """The installable profile, or None while the eSIM is not allocated yet."""
    if (esim.esim_status or "").upper() in _ALLOCATING or not esim.ac:
        return None
    smdp, matching_id = _lpa_parts(esim.ac)
    return EsimProfile(
        iccid=esim.iccid,
        provider_esim_id=esim.esim_tran_no,
        smdp_address=smdp,
        matching_id=matching_id,
        lpa=esim.ac,
    )


def _coverage(item: wire.Package) -> tuple[Coverage, ...]:
    found: dict[str, Coverage] = {}
    for location in item.location_network_list or []:
        code = location.location_code.strip().upper()
        if len(code) != 2 or code in found:
            continue
        networks = tuple(
            Network(
                operator=op.operator_name,
                mcc="",
                mnc="",
                radio=tuple(r.strip() for r in (op.network_type or "").split("/") if r.strip())
                or ("4G",),
            )
            for op in location.operator_list or []
            if op.operator_name
        )
        found[code] = Coverage(code, location.location_name or code, networks)
    for raw in (item.location or "").split(","):
        code = raw.strip().upper()
        if len(code) == 2 and code.isalpha() and code not in found:
            found[code] = Coverage(code, code)  # no name in the listing: the code stands in
    return tuple(found.values())


def _package(item: wire.Package, *, is_topup: bool) -> ProviderPackage | None:
    unit = item.duration_unit.strip().upper()
    if unit != "DAY":
        log.warning("eSIM Access package %s: unknown durationUnit %r", item.package_code, unit)
        return None
    coverage = _coverage(item)
    if not coverage:
        log.warning("eSIM Access package %s: no coverage", item.package_code)
        return None
    location_code = (item.location_code or "").strip().upper()
    if location_code in _GLOBAL_CODES or location_code.startswith("!GL"):
        kind, region = PackageKind.GLOBAL, "Global"
    elif len(coverage) == 1:
        kind, region = PackageKind.LOCAL, coverage[0].country_name
    else:
        kind, region = PackageKind.REGIONAL, location_code or item.name
    data_type = item.data_type or 1
    return ProviderPackage(
        provider_code=item.package_code,
        name=item.name or item.package_code,
        kind=kind,
        region=region,
        coverage=coverage,
        # dataType 4 = daily unlimited; 2/3 = a daily cap (volume is per day).
        data_bytes=None if data_type == 4 else item.volume,
        validity_days=item.duration,
        cost=Money(item.price, item.currency_code.strip().upper() or "USD"),
        is_topup=is_topup or item.package_code.upper().startswith("TOPUP_"),
        rechargeable=(item.support_top_up_type or 1) in (2, 3),
        daily_data=data_type in (2, 3, 4),
        sms_count=0,
    )


# Webhooks are unsigned (§6): trust comes from the sender IP allow-list, and from re-querying the
# API before acting on anything money-relevant.
WEBHOOK_SOURCE_IPS: Final = frozenset(
    {"3.1.131.226", "54.254.74.88", "18.136.190.97", "18.136.60.197", "18.136.19.137"}
)


def is_webhook_source(ip: str) -> bool:
    """Whether a webhook came from one of eSIM Access's published sender IPs (an IPv4-mapped
    IPv6 address, as a dual-stack socket reports it, counts as its IPv4 address)."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address) in WEBHOOK_SOURCE_IPS


_MAX_ICCID: Final = 22  # what esimgate stores; ICCIDs are 19-20 characters
_MAX_REFERENCE: Final = 200


def _text(value: object) -> str | None:
    """A lenient identifier: a non-empty string, or an integer sent as a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def parse_notification(body: bytes) -> ProviderNotice:
    """The §6 envelope ``{notifyType, notifyId?, eventGenerateTime?, content: {…}}`` reduced
    to a notice: ``content.transactionId`` is our order reference, ``content.iccid`` the eSIM.
    Says nothing about the sender: callers check the source address first."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _refuse(LogicalReason.REJECTED, "not JSON") from None
    if not isinstance(event, dict):
        raise _refuse(LogicalReason.REJECTED, "not an eSIM Access notification")
    kind = event.get("notifyType")
    if not isinstance(kind, str) or not kind.strip():
        raise _refuse(LogicalReason.REJECTED, "notification without notifyType")
    content = event.get("content")
    if content is None:
        content = {}
    if not isinstance(content, dict):
        raise _refuse(LogicalReason.REJECTED, "notification content is not an object")
    reference = _text(content.get("transactionId"))
    iccid = _text(content.get("iccid"))
    if reference is not None and len(reference) > _MAX_REFERENCE:
        raise _refuse(LogicalReason.REJECTED, "transactionId too long")
    if iccid is not None and len(iccid) > _MAX_ICCID:
        raise _refuse(LogicalReason.REJECTED, "iccid too long")
    order_no = _text(content.get("orderNo"))
    notify_id = _text(event.get("notifyId"))
    return ProviderNotice(
        event_id=notify_id or hashlib.sha256(body).hexdigest(),
        kind=kind.strip(),
        reference=reference,
        provider_order_id=order_no if order_no is not None and len(order_no) <= 128 else None,
        iccid=iccid,
    )
