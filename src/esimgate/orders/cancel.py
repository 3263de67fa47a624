"""Cancelling the unused eSIMs of an order for a refund through the ledger."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.esims.models import Esim, EsimStatus
from esimgate.esims.repository import EsimRepository
from esimgate.money import render
from esimgate.orders.errors import (
    AlreadyCancelled,
    EsimNotFound,
    Forbidden,
    MissingIdentifier,
    NotEligible,
)
from esimgate.orders.models import Order, OrderStatus
from esimgate.orders.repository import OrderRepository
from esimgate.providers.base import EsimRef, ProviderError
from esimgate.providers.models import ProviderAccount
from esimgate.runtime import Runtime
from esimgate.wallet import service as wallet
from esimgate.webhooks.outbox import record

log = logging.getLogger(__name__)


def ineligibility(esim: Esim) -> str | None:
    """Why an eSIM cannot be cancelled, or None: only never installed, attached or used."""
    if esim.status == EsimStatus.CANCELLED:
        return "already cancelled"
    if esim.ever_installed:
        return "installed"
    if esim.activated_at is not None:
        return "attached to a network"
    if esim.used_bytes > 0:
        return "data used"
    if esim.status != EsimStatus.NEW:
        return f"status {esim.status}"
    return None


async def locate(
    session: AsyncSession, account_id: int, iccid: str | None, esim_id: int | None
) -> Esim:
    """The caller's eSIM by ICCID or id; another account's → 403 (as the seeds document)."""
    if not iccid and esim_id is None:
        raise MissingIdentifier()
    esim = await EsimRepository(session).find(iccid=iccid, esim_id=esim_id)
    if esim is None:
        raise EsimNotFound()
    if esim.account_id != account_id:
        owned = await EsimRepository(session).owned(account_id, esim.iccid) if iccid else None
        if owned is None:
            raise Forbidden()
        esim = owned
    return esim


async def cancel_order_esims(
    runtime: Runtime, account_id: int, iccid: str | None, esim_id: int | None
) -> dict[str, Any]:
    """POST /esims/cancel: decide, ask the upstream (outside any transaction), then refund
    under the order's row lock, re-checking each eSIM, so concurrent cancellations of one
    order can never refund an eSIM twice."""
    async with runtime.sessions() as session:
        target = await locate(session, account_id, iccid, esim_id)
        repo = OrderRepository(session)
        esims = list(await repo.esims(target.order_id))
        order = await session.get(Order, target.order_id)
        provider = await session.get(ProviderAccount, order.provider_account_id) if order else None
    assert order is not None and provider is not None
    reasons = {e.id: ineligibility(e) for e in esims}
    if all(e.status == EsimStatus.CANCELLED for e in esims):
        raise AlreadyCancelled()
    if all(reason is not None for reason in reasons.values()):
        if any(e.status == EsimStatus.CANCELLED for e in esims):
            raise AlreadyCancelled(details=_reasons(esims, reasons))
        raise NotEligible(details=_reasons(esims, reasons))
    adapter = runtime.providers.adapter(provider)
    for esim in esims:
        if reasons[esim.id] is not None:
            continue
        try:
            outcome = await adapter.cancel(EsimRef(esim.iccid, esim.provider_esim_id))
        except ProviderError as exc:
            log.warning("cancel %s: provider error %s", esim.iccid, exc.message)
            reasons[esim.id] = "provider error"
            continue
        if not outcome.cancelled:
            reasons[esim.id] = outcome.reason or "refused by the provider"
    async with runtime.sessions() as session, session.begin():
        repo = OrderRepository(session)
        locked = await repo.locked(order.id)
        assert locked is not None
        now = runtime.clock.now()
        refund_minor = 0
        results = []
        current = list(await repo.esims(order.id))
        for esim in current:
            confirmed = reasons.get(esim.id) is None and esim.status != EsimStatus.CANCELLED
            if confirmed:
                esim.status = EsimStatus.CANCELLED
                esim.cancelled_at = now
                refund_minor += esim.unit_price_minor
            reason = None if confirmed else (reasons.get(esim.id) or "already cancelled")
            paid = esim.unit_price_minor if confirmed else 0
            results.append(_result(esim, confirmed, paid, locked, reason))
        if refund_minor:
            reservation = await repo.reservation(locked.id)
            assert reservation is not None
            await wallet.refund(
                session, runtime.clock, reservation, refund_minor, f"cancel {locked.reference}"
            )
            await record(
                session,
                account_id=locked.account_id,
                event="order.cancelled",
                order_id=locked.id,
                payload={"orderReference": locked.reference, "refunded": refund_minor},
                now=now,
            )
        if all(e.status == EsimStatus.CANCELLED for e in current):
            locked.status = OrderStatus.CANCELLED
        locked.updated_at = now
        cancelled = sum(1 for r in results if r["success"])
        if not cancelled:
            raise NotEligible(details=_reasons(current, reasons))
        balance = (await wallet.lock_account(session, account_id)).balance_minor
        return {
            "success": True,
            "message": f"{cancelled} of {len(current)} eSIMs cancelled and refunded",
            "data": {
                "order_reference": locked.reference,
                "total_esims": len(current),
                "cancelled_esims": cancelled,
                "failed_esims": len(current) - cancelled,
                "refunded_amount": render(refund_minor, locked.currency),
                "currency": locked.currency,
                "refund_method": "balance",
                "balance_credited": refund_minor > 0,
                "new_balance": render(balance, locked.currency),
                "partial_cancellation": 0 < cancelled < len(current),
                "cancel_results": results,
            },
        }


def _reasons(esims: list[Esim], reasons: dict[int, str | None]) -> dict[str, Any]:
    return {"esims": [{"esimId": e.id, "iccid": e.iccid, "reason": reasons[e.id]} for e in esims]}


def _result(
    esim: Esim, success: bool, refund_minor: int, order: Order, reason: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "esimId": esim.id,
        "iccid": esim.iccid,
        "success": success,
        "refundAmount": render(refund_minor, order.currency),
    }
    if reason:
        out["reason"] = reason
    return out
