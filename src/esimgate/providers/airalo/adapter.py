"""Airalo Partner API v2 as an esimgate provider.

* Catalogue: ``GET /packages?include=topup`` (countries/regions → operators → packages); the
  package ``id`` (slug) is our ``provider_code``, ``net_price`` (USD) our cost, ``amount`` MB.
* Orders: synchronous ``POST /orders`` with our reference as ``description``. Airalo has **no
  idempotency key**, so :meth:`AiraloProvider.create_order` first looks the reference up
  (``GET /orders?filter[description]=…``) and only buys when nothing was bought yet.
* Asynchronous orders (account options ``async_orders=true`` and ``webhook_url=…``; default off):
  ``POST /orders-async`` with our reference as ``description`` and our ``webhook_url`` answers 202
  with a ``request_id``, and :meth:`~AiraloProvider.create_order` returns ``PENDING`` with
  ``provider_order_id`` = that ``request_id``. Airalo makes the order later and POSTs it (the
  order body plus ``request_id``) to the webhook URL. Until then the lookup by ``description``
  finds nothing, and :meth:`~AiraloProvider.get_order` must not answer ``None`` (esimgate would
  refund): it answers ``PENDING`` when the order was placed asynchronously, known because this
  process remembers a ``request_id`` for the reference, or because esimgate passes the stored
  ``provider_order_id`` (after a restart) and it is a ``request_id``.

  Telling the ids apart (:func:`is_request_id`): Airalo order ids are decimal integers
  (``583747``); a ``request_id`` is a 25-character nanoid (``A-Za-z0-9_-``, e.g.
  ``3NhR3gKmqCWK7IWppurpDX3Cg``). So a 25-character value is a ``request_id`` even if it happens
  to be all digits, a shorter all-digit value is an order id, and any other value of the nanoid
  alphabet counts as a ``request_id``: should Airalo change that format, the error is towards
  ``PENDING`` (refunded at esimgate's pending deadline if nothing comes), never towards an
  immediate refund of an order Airalo may still make.

  Retry safety: the lookup by ``description`` still comes first; while the order does not exist
  yet, the remembered ``request_id`` answers and nothing is submitted again. Calls for one
  reference are serialised within the process. When the submission's answer is lost (timeout,
  5xx, unreadable 202, cancellation) the reference is remembered as *possibly submitted*:
  :meth:`~AiraloProvider.get_order` answers ``PENDING`` without an id and no second request is
  sent. A verified failure delivery (``request_id`` + ``reason``, no eSIMs) is remembered too:
  :meth:`~AiraloProvider.get_order` answers ``FAILED`` for that ``request_id`` when the lookup
  confirms no order exists. Known limit: these memories are per process (bounded), so after a
  restart an order whose 202 was lost is judged by the lookup alone, and a failed request stays
  ``PENDING`` until esimgate's deadline.
* Usage: ``GET /sims/{iccid}/usage`` (MB, one eSIM per call); ``raw_status`` = ``{"status": …}``.
* Top-ups: ``POST /orders/topups`` (same lookup-before-buy by ``description``).
* Cancel: Airalo only takes manually reviewed refund *requests*, so cancel is not offered.
* Webhooks: :meth:`AiraloProvider.parse_webhook` checks ``airalo-signature`` (HMAC-SHA512 keyed
  with the API secret, :func:`verify_webhook`) and reduces low-data, credit-limit and async-order
  notifications to a :class:`ProviderNotice`. Airalo sends no event id: the id hashes the body.
  An async-order result gives ``reference`` = its ``description`` and ``provider_order_id`` = its
  ``request_id`` (top level or inside ``data``: the notes leave the placement unverified).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import httpx

from esimgate.clock import Clock, SystemClock
from esimgate.esims.units import bytes_from_mb
from esimgate.providers.airalo.client import (
    PRODUCTION_URL,
    PROVIDER,
    AiraloClient,
    sign_payload,
)
from esimgate.providers.airalo.wire import (
    WireOperator,
    WireOrder,
    WirePackage,
    WireRegion,
    WireUsage,
    parse_json,
    parse_timestamp,
)
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
    TechnicalError,
    TopUpRequest,
    TopUpResult,
    UsageReport,
)
from esimgate.providers.registry import AdapterConfig

MAX_PAGES: Final = 50  # catalogue / order-search pages walked at most (a runaway guard)
GLOBAL_SLUGS: Final = frozenset({"world", "global"})
REQUEST_ID_LENGTH: Final = 25  # async/future order request ids are 25-character nanoids
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
MEMORY_LIMIT: Final = 10_000  # references / request ids remembered per process, oldest dropped
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})

_V = TypeVar("_V")


def is_request_id(value: str | None) -> bool:
    """Whether a stored ``provider_order_id`` is an async ``request_id`` rather than an Airalo
    order id: order ids are decimal integers, request ids 25-character nanoids (see the module
    docstring for why anything else of the nanoid alphabet counts as a request id)."""
    if not value or _REQUEST_ID.fullmatch(value) is None:
        return False
    return len(value) == REQUEST_ID_LENGTH or not value.isdigit()


def _request_id(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if _REQUEST_ID.fullmatch(value) else None


def _flag(name: str, value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def _webhook_url(value: str | None) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"webhook_url must be an absolute http(s) URL, not {value!r}")
    return text


def _remember(memory: OrderedDict[str, _V], key: str, value: _V) -> None:
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > MEMORY_LIMIT:
        memory.popitem(last=False)


@dataclass
class _Gate:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def money(amount: Decimal | None, currency: str) -> Money | None:
    """An exact upstream decimal as 1/10000 units (half-up beyond 4 places, never a float)."""
    return None if amount is None else Money.from_decimal(amount, currency)


def verify_webhook(headers: Mapping[str, str], raw_body: bytes, secret: str) -> bool:
    """Check ``airalo-signature`` (hex HMAC-SHA512 keyed with our API secret) on a webhook.

    Airalo's samples sign either the raw body or the SDK's canonical re-serialisation (compact
    JSON, ``/`` → ``\\/``), so both are accepted, compared in constant time.
    """
    given = next((v for k, v in headers.items() if k.lower() == "airalo-signature"), None)
    if not given or not secret:
        return False
    given = given.strip().lower()
    raw_mac = hmac.new(secret.encode(), raw_body, "sha512").hexdigest()
    if hmac.compare_digest(raw_mac, given):
        return True
    try:
        payload = parse_json(raw_body)
        if not isinstance(payload, dict):
            return False
        canonical = {str(k): _floats_as_json(v) for k, v in payload.items()}
        expected = sign_payload(canonical, secret)
    except (ValueError, RecursionError):  # not JSON, or nested deep enough to be hostile
        return False
    return hmac.compare_digest(expected, given)


def _floats_as_json(value: object) -> object:
    # parse_json gives Decimals; json.dumps cannot write them, and a float would re-round.
    # Airalo's webhook numbers (remaining_percentage, remaining: 225.35) survive float round-trips
    # (shortest repr), which is what the SDK's json.loads/json.dumps pair does too.
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats_as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats_as_json(v) for v in value]
    return value


def _refuse(message: str) -> LogicalError:
    return LogicalError(LogicalReason.REJECTED, message, provider=PROVIDER)


def _body_id(payload: dict[str, Any]) -> str:
    """SHA-256 of the notification in a canonical form (sorted keys, compact, exact numbers)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _notice_kind(payload: dict[str, Any]) -> str:
    """The simulator's event names (doc §6), told from the payload since none is sent."""
    event = payload.get("event")
    if isinstance(event, str) and event.strip():
        return event.strip()[:100]
    if "request_id" in payload or isinstance(payload.get("data"), dict):
        return "async_order_notification"  # the result of POST /orders-async (or a future order)
    if "level" in payload or "remaining_percentage" in payload:
        return "low_data_notification"
    if "remaining" in payload:
        return "credit_limit_notification"
    return "notification"


def _text(value: object, limit: int) -> str | None:
    if not isinstance(value, str) or not value or len(value) > limit:
        return None
    return value


def _iccid(value: object) -> str | None:
    """An ICCID as sent (string, or a bare JSON integer); anything else is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if value.isalnum() and len(value) <= 22 else None


def _kind(region: WireRegion) -> PackageKind:
    if region.slug.lower() in GLOBAL_SLUGS:
        return PackageKind.GLOBAL
    return PackageKind.LOCAL if region.country_code else PackageKind.REGIONAL


def _coverage(region: WireRegion, operator: WireOperator) -> tuple[Coverage, ...]:
    networks: dict[str, tuple[Network, ...]] = {}
    for item in operator.coverages:
        code = (item.code or item.name).upper()
        networks[code] = tuple(
            # Airalo names networks but publishes no MCC/MNC.
            Network(operator=n.name, mcc="", mnc="", radio=tuple(n.types) or ("4G",))
            for n in item.networks
            if n.name
        )
    seen: dict[str, Coverage] = {}
    for country in operator.countries:
        code = country.country_code.upper()
        if len(code) == 2 and code not in seen:
            seen[code] = Coverage(code, country.title or code, networks.get(code, ()))
    if not seen and region.country_code and len(region.country_code) == 2:
        code = region.country_code.upper()
        seen[code] = Coverage(code, region.title or code, networks.get(code, ()))
    if not seen:
        for code, nets in networks.items():
            if len(code) == 2:
                seen[code] = Coverage(code, code, nets)
    return tuple(seen.values())


def _package(
    region: WireRegion, operator: WireOperator, package: WirePackage, bases: frozenset[str]
) -> ProviderPackage:
    is_topup = package.type.lower() == "topup"
    cost = money(package.net_price, "USD")
    if cost is None:
        raise ValueError(f"package {package.id!r} has no net_price")
    unlimited = package.is_unlimited or package.amount is None
    title = package.title or package.data or package.id
    return ProviderPackage(
        provider_code=package.id,
        name=f"{operator.title} {title}".strip() if operator.title else title,
        kind=_kind(region),
        region=region.title or operator.title,
        coverage=_coverage(region, operator),
        data_bytes=None if unlimited else bytes_from_mb(package.amount or 0),
        validity_days=package.day,
        cost=cost,
        voice_minutes=package.voice or 0,
        sms_count=package.text or 0,
        is_topup=is_topup,
        rechargeable=operator.rechargeability,
        # The catalogue lists an operator's top-ups next to its base packages; they fit that
        # operator's eSIMs (exact compatibility is per eSIM: GET /sims/{iccid}/topups).
        topup_for=bases if is_topup else frozenset(),
    )


def _profile(sim_iccid: str, lpa: str, matching_id: str, qrcode: str, conf: bool) -> EsimProfile:
    return EsimProfile(
        iccid=sim_iccid,
        provider_esim_id=sim_iccid,
        smdp_address=lpa,
        matching_id=matching_id,
        lpa=qrcode or (f"LPA:1${lpa}${matching_id}" if lpa and matching_id else ""),
        confirmation_code_required=conf,
    )


def _purchase(reference: str, order: WireOrder) -> Purchase:
    esims = tuple(
        _profile(s.iccid, s.lpa, s.matching_id, s.qrcode, bool(s.confirmation_code))
        for s in order.sims
    )
    slug = order.status.slug.lower() if order.status else ""
    if slug == "failed":
        state = PurchaseState.FAILED
    elif esims:
        state = PurchaseState.COMPLETED
    else:
        state = PurchaseState.PENDING  # accepted, eSIMs not listed yet
    return Purchase(
        reference=reference,
        state=state,
        provider_order_id=str(order.id),
        esims=esims,
        unit_cost=money(order.net_price, order.currency),
        failure_reason="upstream order failed" if state is PurchaseState.FAILED else None,
    )


def _order_key(order: WireOrder) -> tuple[int, str]:
    try:
        return (int(order.id), "")
    except ValueError:
        return (0, str(order.id))


class AiraloProvider:
    """One Airalo partner account."""

    kind = "airalo"
    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.CATALOGUE,
            Capability.ORDER,
            Capability.ORDER_LOOKUP,
            Capability.USAGE,
            Capability.TOPUP,
            Capability.WEBHOOKS,
        }
    )
    max_usage_batch = 1  # GET /sims/{iccid}/usage: one eSIM per call
    # Published limits are per endpoint (doc §4); the tightest general one is usage at 5 req/s per
    # company (sandbox: 5 req/s per endpoint). The token call (3/min) is cached, never per request.
    requests_per_second = 5.0

    def __init__(
        self,
        client: AiraloClient,
        *,
        clock: Clock | None = None,
        webhook_secret: str = "",
        async_orders: bool = False,
        webhook_url: str | None = None,
    ) -> None:
        self._client = client
        self._clock: Clock = clock or SystemClock()
        # Notifications are signed with the API secret (doc §6); empty refuses every webhook.
        self._webhook_secret = webhook_secret
        # Async orders: POST /orders-async. Without webhook_url Airalo uses the URL the account
        # opted in with (POST /notifications/opt-in, type async_orders) or refuses with 422.
        self._async_orders = async_orders
        self._webhook_url = webhook_url
        if async_orders:
            # An accepted request leaves no trace of our reference until Airalo makes the order,
            # so our reference alone no longer finds every order (no ORDER_LOOKUP).
            self.capabilities = (type(self).capabilities | {Capability.ASYNC_PROVISIONING}) - {
                Capability.ORDER_LOOKUP
            }
        # Per-process memories (see the module docstring), bounded, oldest dropped first.
        self._requests: OrderedDict[str, str] = OrderedDict()  # reference → request_id
        self._unsure: OrderedDict[str, bool] = OrderedDict()  # reference: 202 answer lost
        self._failures: OrderedDict[str, str] = OrderedDict()  # request_id → Airalo's reason
        self._gates: dict[str, _Gate] = {}

    @classmethod
    def from_config(cls, config: AdapterConfig) -> AiraloProvider:
        credentials = config.credentials
        missing = [k for k in ("client_id", "client_secret") if not credentials.get(k)]
        if missing:
            raise ValueError(f"airalo account {config.name!r} lacks credentials: {missing}")
        base_url = config.base_url or PRODUCTION_URL
        if not base_url.endswith("/"):
            base_url += "/"
        http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(30, connect=5),
            follow_redirects=False,
        )
        client = AiraloClient(
            http, credentials["client_id"], credentials["client_secret"], clock=config.clock
        )
        # Airalo signs webhooks with "your API secret" (the client secret); a separate
        # ``webhook_secret`` credential overrides it should the account ever be given one.
        webhook_secret = credentials.get("webhook_secret") or credentials["client_secret"]
        try:
            async_orders = _flag("async_orders", credentials.get("async_orders"))
            webhook_url = _webhook_url(credentials.get("webhook_url"))
        except ValueError as exc:
            raise ValueError(f"airalo account {config.name!r}: {exc}") from None
        return cls(
            client,
            clock=config.clock,
            webhook_secret=webhook_secret,
            async_orders=async_orders,
            webhook_url=webhook_url,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- the port -----------------------------------------------------------------------------

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, client_ip: str
    ) -> ProviderNotice:
        """A notification signed with ``airalo-signature`` (raw body, else the SDK canonical form).

        Airalo sends no event id and no event name: the kind is told by the payload's shape (doc
        §6: low data, credit limit, async/future order result) and the id is the SHA-256 of the
        body in a canonical form, so a redelivery is a duplicate even if re-serialised.
        """
        if not verify_webhook(headers, body, self._webhook_secret):
            raise _refuse("bad or missing airalo-signature")
        try:
            payload = parse_json(body)
            if not isinstance(payload, dict):
                raise _refuse("not an Airalo notification: body is not a JSON object")
            event_id = _body_id(payload)
        except (ValueError, RecursionError):
            raise _refuse("not an Airalo notification: body is not JSON") from None
        data = payload.get("data")
        order = data if isinstance(data, dict) else {}
        sims = order.get("sims")
        first_sim = sims[0] if isinstance(sims, list) and sims and isinstance(sims[0], dict) else {}
        # Async/future order results: request_id at the top level or inside data (unverified).
        request_id = _request_id(payload.get("request_id")) or _request_id(order.get("request_id"))
        reason = _text(payload.get("reason"), 1000) or _text(order.get("reason"), 1000)
        if request_id is not None and reason is not None and not first_sim and "id" not in order:
            # "A failure carries reason and no sims" (doc §5.3): get_order answers FAILED for
            # this request once the lookup confirms that no order exists.
            _remember(self._failures, request_id, reason)
        return ProviderNotice(
            event_id=event_id,
            kind=_notice_kind(payload),
            reference=_text(order.get("description"), 200)
            or _text(payload.get("description"), 200),
            iccid=_iccid(payload.get("iccid")) or _iccid(first_sim.get("iccid")),
            provider_order_id=request_id,
        )

    async def list_packages(self) -> Sequence[ProviderPackage]:
        found: dict[str, ProviderPackage] = {}
        page = 1
        while True:
            answer = await self._client.packages(page=page)
            for region in answer.data:
                for operator in region.operators:
                    bases = frozenset(p.id for p in operator.packages if p.type.lower() != "topup")
                    for package in operator.packages:
                        if package.id in found:
                            continue
                        try:
                            found[package.id] = _package(region, operator, package, bases)
                        except ValueError:
                            continue  # one unreadable package must not hide the catalogue
            if answer.meta.current_page >= answer.meta.last_page or page >= MAX_PAGES:
                break
            page += 1
        return list(found.values())

    async def create_order(self, request: OrderRequest) -> Purchase:
        if request.quantity < 1:
            raise LogicalError(LogicalReason.REJECTED, "quantity must be >= 1", provider=PROVIDER)
        async with self._exclusive(request.reference):
            # No idempotency upstream: an earlier attempt with this reference may have bought
            # already, or (async) may have been accepted with the order not made yet.
            try:
                existing = await self._known(request.reference)
            except TechnicalError as exc:
                exc.committed = False  # only the lookup failed: this call has not sent the order
                raise
            if existing is not None:
                return existing
            if self._async_orders:
                return await self._submit_async(request)
            answer = await self._client.create_order(
                request.provider_code, request.quantity, request.reference
            )
            return _purchase(request.reference, answer.data)

    async def get_order(
        self, reference: str, provider_order_id: str | None = None
    ) -> Purchase | None:
        known = await self._known(reference, provider_order_id)
        if known is None and self._async_orders:
            # With async orders on, a request whose 202 was lost before a restart may still be
            # in Airalo's queue with no trace of our reference yet: pending, so the order waits
            # for the pending deadline rather than being refunded while Airalo may still make it.
            return Purchase(reference, PurchaseState.PENDING)
        return known

    async def _known(self, reference: str, provider_order_id: str | None = None) -> Purchase | None:
        """The order as far as Airalo or this process knows it; None when neither does."""
        matches = [o for o in await self._find_orders(reference) if o.type.lower() != "topup"]
        if matches:
            self._requests.pop(reference, None)
            self._unsure.pop(reference, None)
            # Two orders with one reference would be an earlier double buy: report the first.
            return _purchase(reference, min(matches, key=_order_key))
        # No order yet. Placed asynchronously? Then it is pending (or failed), never "no such
        # order": None makes esimgate refund an order Airalo may still make.
        request_id = self._requests.get(reference)
        if request_id is None and is_request_id(provider_order_id):
            request_id = provider_order_id
        if request_id is not None:
            reason = self._failures.get(request_id)
            if reason is not None:
                return Purchase(
                    reference=reference,
                    state=PurchaseState.FAILED,
                    provider_order_id=request_id,
                    failure_reason=f"asynchronous order failed: {reason}",
                )
            return Purchase(reference, PurchaseState.PENDING, provider_order_id=request_id)
        if reference in self._unsure:
            return Purchase(reference, PurchaseState.PENDING)
        return None

    async def query_usage(self, esims: Sequence[EsimRef]) -> Sequence[UsageReport]:
        if len(esims) > self.max_usage_batch:
            raise LogicalError(
                LogicalReason.REJECTED,
                f"at most {self.max_usage_batch} eSIM per usage query",
                provider=PROVIDER,
            )
        reports: list[UsageReport] = []
        for ref in esims:
            try:
                answer = await self._client.usage(ref.iccid)
            except LogicalError as exc:
                if exc.reason is LogicalReason.NOT_FOUND:
                    continue  # unknown eSIMs are simply absent
                raise
            reports.append(self._report(ref, answer.data))
        return reports

    async def top_up(self, request: TopUpRequest) -> TopUpResult:
        if request.quantity != 1:
            raise LogicalError(
                LogicalReason.NOT_ALLOWED,
                "Airalo applies one top-up package per request",
                provider=PROVIDER,
            )
        try:
            earlier = await self._find_orders(request.reference)
        except TechnicalError as exc:
            exc.committed = False  # the top-up itself was not sent
            raise
        for order in earlier:
            if order.type.lower() == "topup":
                return TopUpResult(
                    reference=request.reference,
                    state=PurchaseState.COMPLETED,
                    unit_cost=money(order.net_price, order.currency),
                )
        answer = (
            await self._client.create_topup(
                request.provider_code, request.esim.iccid, request.reference
            )
        ).data
        # The response carries no new totals (doc §5.9): callers re-read usage.
        return TopUpResult(
            reference=request.reference,
            state=PurchaseState.COMPLETED,
            unit_cost=money(answer.net_price, answer.currency),
        )

    async def cancel(self, esim: EsimRef) -> CancelResult:
        raise LogicalError(
            LogicalReason.NOT_ALLOWED,
            "Airalo has no cancel: refunds are manual requests (POST /refund)",
            provider=PROVIDER,
        )

    # --- helpers ------------------------------------------------------------------------------

    async def _submit_async(self, request: OrderRequest) -> Purchase:
        """``POST /orders-async``; the ``request_id`` is remembered before anything else."""
        try:
            answer = await self._client.create_order_async(
                request.provider_code, request.quantity, request.reference, self._webhook_url
            )
        except LogicalError:
            raise  # refused: nothing was queued
        except TechnicalError as exc:
            if exc.committed is not False:
                _remember(self._unsure, request.reference, True)
            raise
        except BaseException:
            # Cancelled mid-request (esimgate's timeout budget): it may have been queued.
            _remember(self._unsure, request.reference, True)
            raise
        request_id = answer.data.request_id
        _remember(self._requests, request.reference, request_id)
        self._unsure.pop(request.reference, None)
        return Purchase(request.reference, PurchaseState.PENDING, provider_order_id=request_id)

    @asynccontextmanager
    async def _exclusive(self, reference: str) -> AsyncIterator[None]:
        """One create per reference at a time in this process (the second sees the first's)."""
        gate = self._gates.setdefault(reference, _Gate())
        gate.users += 1
        try:
            async with gate.lock:
                yield
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[reference]

    async def _find_orders(self, reference: str) -> list[WireOrder]:
        """Upstream orders whose description is exactly our reference (the filter is LIKE)."""
        found: list[WireOrder] = []
        page = 1
        while True:
            answer = await self._client.orders(description=reference, page=page)
            found += [o for o in answer.data if (o.description or "") == reference]
            if answer.meta.current_page >= answer.meta.last_page or page >= MAX_PAGES:
                return found
            page += 1

    def _report(self, ref: EsimRef, usage: WireUsage) -> UsageReport:
        # Unlimited plans report 0/0 (sandbox even with is_unlimited false): a zero total is no
        # allowance to measure, never "used up".
        unlimited = bool(usage.is_unlimited) or not usage.total
        total_bytes = None if unlimited else bytes_from_mb(usage.total or 0)
        used_bytes = 0
        if total_bytes is not None and usage.remaining is not None:
            used_bytes = max(total_bytes - bytes_from_mb(max(usage.remaining, Decimal(0))), 0)
        raw = {"status": usage.status} if usage.status is not None else {}
        return UsageReport(
            esim=ref,
            used_bytes=used_bytes,
            total_bytes=total_bytes,
            observed_at=self._clock.now(),
            raw_status=raw,
            expires_at=parse_timestamp(usage.expired_at),
        )
