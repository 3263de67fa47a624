"""Placing an order without ever losing money.

The flow is a short saga of two units of work around one upstream call:

1. **reserve** (one transaction, account row locked): price the package, check the guard and
   the balance, create the order (``pending``, upstream ``sending``), reserve its amount;
2. **call** the provider with our order reference (its idempotency/tracking id);
3. **settle** (one transaction, order row locked): a completed purchase stores the eSIMs and
   captures; a definite refusal releases; an accepted-but-later purchase waits for the
   provisioning job; an ambiguous outcome (timeout, 5xx, crash) stays pending until
   reconciliation asks the provider by our reference.

Every order therefore ends completed and charged once, or failed and fully released. Settling is
idempotent: it only acts on a pending order, under its row lock.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account
from esimgate.accounts.pricing import price_minor
from esimgate.auth.errors import DuplicateRequest
from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.clock import epoch_ms, iso_z
from esimgate.errors import ApiError, InvalidParameter, ServiceUnavailable
from esimgate.esims.install import InvalidLpa, build_lpa, qr_data_url, validate_lpa
from esimgate.esims.models import Esim, EsimStatus
from esimgate.esims.presenter import install_links
from esimgate.money import e4_to_minor, minor_to_decimal, render
from esimgate.orders import idempotency
from esimgate.orders.errors import (
    IdempotencyKeyReused,
    InsufficientBalance,
    InvalidPackage,
    PriceMismatch,
)
from esimgate.orders.idempotency import Claim
from esimgate.orders.models import Order, OrderKind, OrderStatus, UpstreamState
from esimgate.orders.repository import OrderRepository
from esimgate.orders.request import OrderBody
from esimgate.providers.base import (
    LogicalError,
    Money,
    OrderRequest,
    Purchase,
    PurchaseState,
    TechnicalError,
    TopUpResult,
)
from esimgate.providers.models import ProviderAccount
from esimgate.runtime import Runtime
from esimgate.wallet import service as wallet
from esimgate.webhooks.outbox import record
from esimgate.webhooks.service import ensure_secret
from esimgate.worker.jobs import enqueue

log = logging.getLogger(__name__)

PROVISION_POLL = timedelta(seconds=10)
NEW_SYNC_DELAY = timedelta(minutes=10)  # first background usage check of a new eSIM


@dataclass(frozen=True, slots=True)
class Placed:
    """What the endpoint renders."""

    response: dict[str, Any]
    job_ids: list[int]


def new_reference(kind: OrderKind, now_ms: int) -> str:
    prefix = "order" if kind == OrderKind.ESIM else "topup"
    return f"{prefix}_{now_ms}_{secrets.token_hex(4)}"


async def place_order(
    runtime: Runtime,
    account_id: int,
    body: OrderBody,
    request_key: tuple[str, str] | None,
    api_key_id: int | None = None,
) -> Placed:
    """POST /esims/order, end to end."""
    started = time.perf_counter()
    now = runtime.clock.now()
    key = body.idempotency_key
    if key is not None:
        async with runtime.sessions() as session, session.begin():
            claimed = await idempotency.claim(session, account_id, key, body.fingerprint, now)
        if claimed.claim is Claim.REPLAY:
            assert claimed.response is not None
            return Placed({**claimed.response, "duplicate": True}, [])
        if claimed.claim is Claim.MISMATCH:
            raise IdempotencyKeyReused()
        if claimed.claim is Claim.IN_PROGRESS:
            raise DuplicateRequest(
                "A request with this idempotency key is still being processed",
                details={"in_progress": True, "idempotency_key": key},
            )
    try:
        order_id, route = await _reserve(runtime, account_id, body, api_key_id)
    except ApiError:
        if key is not None:
            async with runtime.sessions() as session, session.begin():
                await idempotency.fail(session, account_id, key, runtime.clock.now())
        raise
    async with runtime.sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
    if request_key is not None:
        await runtime.gate.remember(*request_key, {"orderReference": order.reference})
    outcome = await _route_and_call(runtime, order, route)
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    async with runtime.sessions() as session, session.begin():
        jobs = await settle(session, runtime, order_id, outcome, processing_time_ms=elapsed_ms)
        response = await order_response(session, order_id)
    if request_key is not None:
        await runtime.gate.remember(
            *request_key, {"orderReference": order.reference, "status": response["status"]}
        )
    return Placed(response, jobs)


async def _reserve(
    runtime: Runtime, account_id: int, body: OrderBody, api_key_id: int | None = None
) -> tuple[int, list[int]]:
    """The pending order with its amount reserved, and the offers to try, cheapest first."""
    async with runtime.sessions() as session, session.begin():
        repo = OrderRepository(session)
        account = await wallet.lock_account(session, account_id)
        package = await repo.sellable_package(body.package_code, topup=False)
        offers = await repo.offers(package.id, account.currency) if package else []
        if package is None or not offers:
            raise InvalidPackage(detail=f"No package {body.package_code!r} is on sale")
        if body.recurring and not package.renewable:
            raise InvalidParameter(
                "Invalid parameter: recurring", detail="This package does not renew"
            )
        # Upstreams whose circuit is open are skipped; with none left, refuse before any
        # money moves. The price stays the listed one (the cheapest offer's).
        now = runtime.clock.now()
        breakers = [runtime.providers.breaker(o.provider_account_id) for o in offers]
        route = [o for o, b in zip(offers, breakers, strict=True) if b.state(now) != "open"]
        if not route:
            wait = min(b.retry_after(now) for b in breakers)
            raise ServiceUnavailable(
                "Every upstream for this package is failing; try again shortly",
                headers={"Retry-After": str(wait)},
            )
        order = await open_order(
            session,
            runtime,
            account,
            package,
            offers[0],
            kind=OrderKind.ESIM,
            quantity=body.quantity,
            price_guard=body.price,
            callback_url=body.callback_url,
            api_key_id=api_key_id,
        )
        if body.idempotency_key is not None:
            await idempotency.attach_order(session, account.id, body.idempotency_key, order.id)
        if body.callback_url is not None and api_key_id is not None:
            await ensure_secret(session, runtime.box, account.id, api_key_id, order.created_at)
        if route[0] is not offers[0]:
            _route_to(order, route[0])
        return order.id, [o.id for o in route]


def _route_to(order: Order, offer: PackageOffer) -> None:
    """Send the order to this offer's upstream; the customer's price does not change."""
    order.provider_account_id = offer.provider_account_id
    order.provider_code = offer.provider_code
    order.unit_cost_e4 = offer.cost_e4


async def _route_and_call(runtime: Runtime, order: Order, route: list[int]) -> Outcome:
    """Try the offers in order; only a failure that surely reached no upstream moves on to
    the next one (an ambiguous one must be reconciled where it happened)."""
    outcome = Outcome(failure="no upstream could take the order")
    for index, offer_id in enumerate(route):
        if index > 0:
            async with runtime.sessions() as session, session.begin():
                offer = await session.get(PackageOffer, offer_id)
                locked = await OrderRepository(session).locked(order.id)
                assert offer is not None and locked is not None
                _route_to(locked, offer)
                order = locked
        breaker = runtime.providers.breaker(order.provider_account_id)
        now = runtime.clock.now()
        if not breaker.allows(now):
            continue
        try:
            outcome = await _call_upstream(runtime, order)
        except BaseException:
            breaker.abandon()
            raise
        if outcome.failover or outcome.ambiguous:
            breaker.failure(now)
        else:
            breaker.success()
        if not outcome.failover:
            return outcome
    return outcome


async def open_order(
    session: AsyncSession,
    runtime: Runtime,
    account: Account,
    package: CatalogPackage,
    offer: PackageOffer,
    *,
    kind: OrderKind,
    quantity: int,
    price_guard: Decimal | None,
    callback_url: str | None = None,
    esim_id: int | None = None,
    api_key_id: int | None = None,
) -> Order:
    """Price, guard, and reserve: a pending order with its amount set aside. The account row
    must be locked by this transaction, so concurrent orders cannot overdraw it."""
    now = runtime.clock.now()
    unit_price = price_minor(
        offer.cost_e4, account.currency, account.markup_percent_bp, account.markup_fixed_minor
    )
    check_price_guard(price_guard, unit_price, account.currency)
    amount = unit_price * quantity
    if account.balance_minor < amount:
        raise insufficient(account, amount)
    order = Order(
        reference=new_reference(kind, epoch_ms(now)),
        account_id=account.id,
        kind=kind,
        status=OrderStatus.PENDING,
        upstream_state=UpstreamState.SENDING,
        package_id=package.id,
        package_code=package.code,
        package_name=package.name,
        quantity=quantity,
        unit_price_minor=unit_price,
        amount_minor=amount,
        currency=account.currency,
        unit_cost_e4=offer.cost_e4,
        provider_account_id=offer.provider_account_id,
        provider_code=offer.provider_code,
        esim_id=esim_id,
        api_key_id=api_key_id,
        callback_url=callback_url,
        created_at=now,
        updated_at=now,
    )
    await OrderRepository(session).add(order)
    await wallet.reserve(session, runtime.clock, account, order.id, amount)
    return order


def check_price_guard(price: Decimal | None, unit_price_minor: int, currency: str) -> None:
    if price is not None and price != minor_to_decimal(unit_price_minor, currency):
        raise PriceMismatch(
            detail=f"Current price is {minor_to_decimal(unit_price_minor, currency)} {currency}",
            details={"current_price": render(unit_price_minor, currency), "submitted": str(price)},
        )


def insufficient(account: Account, required_minor: int) -> InsufficientBalance:
    balance = minor_to_decimal(account.balance_minor, account.currency)
    required = minor_to_decimal(required_minor, account.currency)
    return InsufficientBalance(
        detail=f"Balance {balance} {account.currency} is below the required {required}",
        details={
            "balance": render(account.balance_minor, account.currency),
            "required": render(required_minor, account.currency),
            "currency": account.currency,
        },
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the upstream call told us: a purchase, a definite failure, or nothing certain."""

    purchase: Purchase | None = None
    topup: TopUpResult | None = None
    failure: str | None = None  # definite: nothing was bought
    failover: bool = False  # the failure surely reached no upstream: another may be tried
    ambiguous: str | None = None  # may have been bought: ask later by reference


async def _call_upstream(runtime: Runtime, order: Order) -> Outcome:
    async with runtime.sessions() as session:
        account = await session.get(ProviderAccount, order.provider_account_id)
        assert account is not None
    adapter = runtime.providers.adapter(account)
    request = OrderRequest(
        reference=order.reference,
        provider_code=order.provider_code,
        quantity=order.quantity,
        expected_unit_cost=Money(order.unit_cost_e4, order.currency),
    )
    return await call_provider(runtime, order.reference, adapter.create_order(request))


async def call_provider(
    runtime: Runtime, reference: str, call: Coroutine[Any, Any, Purchase | TopUpResult]
) -> Outcome:
    """Run one mutating upstream call within the timeout budget and classify its outcome."""
    try:
        async with asyncio.timeout(runtime.settings.provider_timeout_seconds):
            result = await call
    except LogicalError as exc:
        return Outcome(failure=f"{exc.reason.value}: {exc.message}")
    except TechnicalError as exc:
        if exc.committed is False:
            return Outcome(failure=f"upstream unavailable: {exc.message}", failover=True)
        return Outcome(ambiguous=f"upstream outcome unknown: {exc.message}")
    except TimeoutError:
        return Outcome(ambiguous="upstream timed out")
    except Exception as exc:  # an adapter bug must not lose the money or the order
        log.exception("%s: unexpected error from the provider", reference)
        return Outcome(ambiguous=f"unexpected {type(exc).__name__}")
    if isinstance(result, Purchase):
        return Outcome(purchase=result)
    return Outcome(topup=result)


async def settle(
    session: AsyncSession,
    runtime: Runtime,
    order_id: int,
    outcome: Outcome,
    *,
    processing_time_ms: int | None = None,
) -> list[int]:
    """Apply an upstream outcome to a pending order (no-op otherwise). Returns new job ids."""
    repo = OrderRepository(session)
    order = await repo.locked(order_id)
    if order is None or order.status != OrderStatus.PENDING:
        return []
    now = runtime.clock.now()
    order.updated_at = now
    if processing_time_ms is not None:
        order.processing_time_ms = processing_time_ms
    purchase = outcome.purchase
    if purchase is not None and purchase.provider_order_id:
        order.provider_order_id = purchase.provider_order_id
    if outcome.failure is not None or (purchase and purchase.state == PurchaseState.FAILED):
        reason = outcome.failure or (purchase.failure_reason if purchase else None) or "failed"
        await fail_order(session, runtime, order, reason)
        return []
    if purchase is not None and purchase.state == PurchaseState.COMPLETED:
        await _complete(session, runtime, order, purchase)
        return []
    topup = outcome.topup
    if topup is not None and topup.state == PurchaseState.FAILED:
        await fail_order(session, runtime, order, topup.failure_reason or "top-up failed")
        return []
    if topup is not None and topup.state == PurchaseState.COMPLETED:
        await complete_topup(session, runtime, order, topup)
        return []
    # Accepted for later provisioning, or ambiguous: keep the money reserved and ask again.
    order.upstream_state = UpstreamState.ACCEPTED if purchase is not None else UpstreamState.UNKNOWN
    if outcome.ambiguous:
        order.failure_reason = outcome.ambiguous
    job = await enqueue(
        session,
        "orders.settle",
        {"order_id": order.id},
        now=now,
        run_at=now + PROVISION_POLL,
        dedupe_key=f"orders.settle:{order.id}",
    )
    return [job.id] if job else []


async def fail_order(session: AsyncSession, runtime: Runtime, order: Order, reason: str) -> None:
    now = runtime.clock.now()
    reservation = await OrderRepository(session).reservation(order.id)
    if reservation is not None:
        await wallet.release(session, runtime.clock, reservation)
    order.status = OrderStatus.FAILED
    order.upstream_state = UpstreamState.DONE
    order.failure_reason = reason[:2000]
    order.updated_at = now
    await idempotency.finish_for_order(session, order.id, None, now)
    await record(
        session,
        account_id=order.account_id,
        event="order.failed",
        order_id=order.id,
        payload={"orderReference": order.reference, "status": "failed", "reason": reason},
        now=now,
    )


async def _complete(
    session: AsyncSession, runtime: Runtime, order: Order, purchase: Purchase
) -> None:
    now = runtime.clock.now()
    repo = OrderRepository(session)
    package = await repo.sellable_package(order.package_code, topup=False)
    validity = package.validity_days if package else 0
    total = package.data_bytes if package else None
    if len(purchase.esims) != order.quantity:
        log.warning(
            "order %s: upstream delivered %d eSIMs for %d",
            order.reference,
            len(purchase.esims),
            order.quantity,
        )
    for profile in purchase.esims:
        lpa = profile.lpa
        try:
            validate_lpa(lpa)
        except InvalidLpa:
            # Pass provider strings through unchanged when they are valid; otherwise rebuild
            # the activation code from its parts rather than hand a phone a broken one.
            log.warning("order %s: provider sent an invalid LPA string %r", order.reference, lpa)
            lpa = build_lpa(profile.smdp_address, profile.matching_id)
        esim = Esim(
            account_id=order.account_id,
            order_id=order.id,
            iccid=profile.iccid,
            provider_account_id=order.provider_account_id,
            provider_esim_id=profile.provider_esim_id,
            provider_code=order.provider_code,
            package_id=order.package_id,
            smdp_address=profile.smdp_address,
            matching_id=profile.matching_id,
            lpa=lpa,
            qr_token=secrets.token_urlsafe(24),
            status=EsimStatus.NEW,
            raw_status={},
            total_bytes=total,
            used_bytes=0,
            validity_days=validity,
            unit_price_minor=order.unit_price_minor,
            created_at=now,
            next_sync_at=now + NEW_SYNC_DELAY,
        )
        await repo.add(esim)
        await record(
            session,
            account_id=order.account_id,
            event="esim.provisioned",
            order_id=order.id,
            esim_id=esim.id,
            payload={"orderReference": order.reference, "iccid": esim.iccid, **install_links(esim)},
            now=now,
        )
    await _charge(session, runtime, order, "order.completed", {"status": "completed"})
    if await idempotency.has_key(session, order.id):
        response = await order_response(session, order.id)
        await idempotency.finish_for_order(session, order.id, response, now)


async def _charge(
    session: AsyncSession,
    runtime: Runtime,
    order: Order,
    event: str,
    payload: dict[str, Any],
    esim_id: int | None = None,
) -> None:
    """Capture the order's reservation (its one charge), mark it completed, record ``event``."""
    now = runtime.clock.now()
    reservation = await OrderRepository(session).reservation(order.id)
    assert reservation is not None
    await wallet.capture(session, runtime.clock, reservation)
    order.status = OrderStatus.COMPLETED
    order.upstream_state = UpstreamState.DONE
    order.completed_at = now
    order.failure_reason = None
    await record(
        session,
        account_id=order.account_id,
        event=event,
        order_id=order.id,
        esim_id=esim_id,
        payload={"orderReference": order.reference, **payload},
        now=now,
    )
    await session.flush()


async def complete_topup(
    session: AsyncSession, runtime: Runtime, order: Order, result: TopUpResult
) -> None:
    """Charge a top-up and apply its new totals to the eSIM."""
    now = runtime.clock.now()
    esim = await session.get(Esim, order.esim_id) if order.esim_id else None
    assert esim is not None, f"top-up {order.reference} has no eSIM"
    package = await session.get(CatalogPackage, order.package_id)
    if result.total_bytes is not None or esim.total_bytes is None:
        esim.total_bytes = result.total_bytes
    elif package is not None and package.data_bytes is not None:
        esim.total_bytes += package.data_bytes * order.quantity
    if result.expires_at is not None:
        esim.expires_at = result.expires_at
    elif package is not None and esim.activated_at is None:
        esim.validity_days += package.validity_days * order.quantity
    if esim.status == EsimStatus.DEPLETED:
        esim.status = EsimStatus.ACTIVE
    esim.next_sync_at = now  # its totals changed: watch it again
    await _charge(session, runtime, order, "topup.completed", {"iccid": esim.iccid}, esim.id)


async def order_response(session: AsyncSession, order_id: int) -> dict[str, Any]:
    """The spec 6.1 response for an order as it stands."""
    order = await session.get(Order, order_id)
    assert order is not None
    account = await session.get(Account, order.account_id)
    assert account is not None
    esims = await OrderRepository(session).esims(order.id)
    pending = order.status == OrderStatus.PENDING
    cost_minor = e4_to_minor(order.unit_cost_e4 * order.quantity, order.currency)
    items = [_esim_item(e) for e in esims]
    first = items[0] if items else {}
    status = "pending_details" if pending else order.status
    return {
        "success": order.status != OrderStatus.FAILED,
        "message": _message(order.status),
        "orderReference": order.reference,
        "esimId": esims[0].id if esims else None,
        "packageName": order.package_name,
        "packageCode": order.package_code,
        "quantity": order.quantity,
        "newBalance": render(account.balance_minor, account.currency),
        "currency": order.currency,
        "lpaString": first.get("lpaString"),
        "qrCodeUrl": first.get("qrCodeUrl"),
        "directAppleInstallUrl": first.get("directAppleInstallUrl"),
        "directAndroidInstallUrl": first.get("directAndroidInstallUrl"),
        "paymentMethod": "balance",
        "status": status,
        "isPending": pending,
        "amount": render(order.amount_minor, order.currency),
        "profit": render(order.amount_minor - cost_minor, order.currency),
        "final_price": render(order.amount_minor, order.currency),
        "processing_time_ms": order.processing_time_ms,
        "createdAt": iso_z(order.created_at),
        "esims": items,
    }


def _message(status: str) -> str:
    return {
        OrderStatus.COMPLETED: "Order processed successfully",
        OrderStatus.PENDING: "Order accepted; eSIM details will follow",
        OrderStatus.FAILED: "Order failed; nothing was charged",
        OrderStatus.CANCELLED: "Order cancelled and refunded",
    }.get(OrderStatus(status), status)


def _esim_item(esim: Esim) -> dict[str, Any]:
    links = install_links(esim)
    return {
        "id": esim.id,
        "iccid": esim.iccid,
        "lpaString": esim.lpa,
        "qrCodeUrl": qr_data_url(esim.lpa),
        "directAppleInstallUrl": links["directAppleInstallUrl"],
        "directAndroidInstallUrl": links["directAndroidInstallUrl"],
        "status": "New" if esim.status == EsimStatus.NEW else esim.status.title(),
        "profileStatus": esim.profile_status or "Released",
        "isPending": False,
    }
