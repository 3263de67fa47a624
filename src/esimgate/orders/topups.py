"""Top-ups: compatible packages for an eSIM, and buying one through the same ledger flow."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account
from esimgate.accounts.pricing import price_minor
from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.clock import iso_z
from esimgate.esims.models import Esim, EsimStatus
from esimgate.esims.repository import EsimRepository
from esimgate.money import e4_to_minor, render
from esimgate.orders.errors import (
    EsimNotFound,
    EsimNotToppable,
    InvalidTopupPackage,
    TopupNotSupported,
)
from esimgate.orders.models import Order, OrderKind, OrderStatus
from esimgate.orders.service import call_provider, open_order, settle
from esimgate.providers.base import Capability, EsimRef, TopUpRequest
from esimgate.providers.models import ProviderAccount
from esimgate.runtime import Runtime
from esimgate.wallet import service as wallet

log = logging.getLogger(__name__)

TOPPABLE = {EsimStatus.NEW, EsimStatus.ACTIVE, EsimStatus.DEPLETED}
GIB = 1024**3


async def compatible_offers(
    session: AsyncSession, esim: Esim, currency: str
) -> list[tuple[CatalogPackage, PackageOffer]]:
    """Top-ups of the eSIM's own upstream account that apply to its package: the offer names
    the eSIM's upstream package, or names none and covers every country the eSIM covers."""
    base = await session.get(CatalogPackage, esim.package_id)
    covered = {c["code"] for c in base.countries} if base else set()
    rows = await session.execute(
        select(CatalogPackage, PackageOffer)
        .join(PackageOffer, PackageOffer.package_id == CatalogPackage.id)
        .where(
            CatalogPackage.is_topup.is_(True),
            CatalogPackage.active.is_(True),
            PackageOffer.active.is_(True),
            PackageOffer.provider_account_id == esim.provider_account_id,
            PackageOffer.currency == currency,
        )
        .order_by(CatalogPackage.data_bytes, CatalogPackage.validity_days, CatalogPackage.id)
    )
    out = []
    for package, offer in rows.all():
        if offer.topup_for:
            fits = esim.provider_code in offer.topup_for
        else:
            fits = covered <= {c["code"] for c in package.countries}
        if fits:
            out.append((package, offer))
    return out


async def owned_esim(session: AsyncSession, account_id: int, iccid: str) -> Esim:
    esim = await EsimRepository(session).owned(account_id, iccid)
    if esim is None:
        raise EsimNotFound()
    return esim


def topup_json(package: CatalogPackage, offer: PackageOffer, account: Account) -> dict[str, Any]:
    price = price_minor(
        offer.cost_e4, account.currency, account.markup_percent_bp, account.markup_fixed_minor
    )
    data_gb: int | float = 0
    if package.data_bytes is not None:
        whole = package.data_bytes % GIB == 0
        data_gb = package.data_bytes // GIB if whole else round(package.data_bytes / GIB, 3)
    return {
        "package_code": package.code,
        "name": package.name,
        "region": package.region,
        "type": package.kind,
        "countries": [c["name"] for c in package.countries],
        "country_codes": [c["code"] for c in package.countries],
        "data_amount_gb": data_gb,
        "validity_days": package.validity_days,
        "cost": render(price, account.currency),
        "currency": account.currency,
        "features": {
            "voice_minutes": package.voice_minutes,
            "sms_count": package.sms_count,
            "is_rechargeable": True,
        },
        "is_unlimited": package.data_bytes is None,
        "has_voice": package.voice_minutes > 0,
        "has_sms": package.sms_count > 0,
    }


@dataclass(frozen=True, slots=True)
class TopUpBody:
    iccid: str
    package_code: str
    quantity: int
    price: Decimal | None


async def place_topup(runtime: Runtime, account_id: int, body: TopUpBody) -> dict[str, Any]:
    """POST /topup/order: reserve → upstream top-up with our reference → settle."""
    started = time.perf_counter()
    async with runtime.sessions() as session, session.begin():
        account = await wallet.lock_account(session, account_id)
        esim = await owned_esim(session, account_id, body.iccid)
        if esim.status not in TOPPABLE:
            raise EsimNotToppable(
                f"eSIM cannot be topped up in status {esim.status}",
                details={"status": esim.status},
            )
        provider = await session.get(ProviderAccount, esim.provider_account_id)
        assert provider is not None
        adapter = runtime.providers.adapter(provider)
        if Capability.TOPUP not in adapter.capabilities:
            raise TopupNotSupported()
        match = [
            (p, o)
            for p, o in await compatible_offers(session, esim, account.currency)
            if p.code == body.package_code
        ]
        if not match:
            raise InvalidTopupPackage(detail=f"{body.package_code!r} does not fit this eSIM")
        package, offer = match[0]
        order = await open_order(
            session,
            runtime,
            account,
            package,
            offer,
            kind=OrderKind.TOPUP,
            quantity=body.quantity,
            price_guard=body.price,
            esim_id=esim.id,
        )
        order_id = order.id
        request = TopUpRequest(
            reference=order.reference,
            esim=EsimRef(esim.iccid, esim.provider_esim_id),
            provider_code=offer.provider_code,
            quantity=body.quantity,
        )
    outcome = await call_provider(runtime, request.reference, adapter.top_up(request))
    elapsed = int((time.perf_counter() - started) * 1000)
    async with runtime.sessions() as session, session.begin():
        await settle(session, runtime, order_id, outcome, processing_time_ms=elapsed)
        return await topup_response(session, order_id)


async def topup_response(session: AsyncSession, order_id: int) -> dict[str, Any]:
    order = await session.get(Order, order_id)
    assert order is not None and order.esim_id is not None
    esim = await session.get(Esim, order.esim_id)
    account = await session.get(Account, order.account_id)
    assert esim is not None and account is not None
    cost_minor = e4_to_minor(order.unit_cost_e4 * order.quantity, order.currency)
    total = esim.total_bytes
    remaining = None if total is None else max(0, total - esim.used_bytes)
    pending = order.status == OrderStatus.PENDING
    return {
        "success": order.status != OrderStatus.FAILED,
        "message": {
            OrderStatus.COMPLETED: "eSIM top-up processed successfully",
            OrderStatus.PENDING: "Top-up accepted; it will be applied shortly",
            OrderStatus.FAILED: "Top-up failed; nothing was charged",
        }.get(OrderStatus(order.status), order.status),
        "orderReference": order.reference,
        "iccid": esim.iccid,
        "packageName": order.package_name,
        "packageCode": order.package_code,
        "newBalance": render(account.balance_minor, account.currency),
        "currency": order.currency,
        "status": "pending" if pending else order.status,
        "amount": render(order.amount_minor, order.currency),
        "profit": render(order.amount_minor - cost_minor, order.currency),
        "processing_time_ms": order.processing_time_ms,
        "esimData": {
            "newTotalVolumeGB": None if total is None else round(total / GIB, 3),
            "newRemainingVolumeGB": None if remaining is None else round(remaining / GIB, 3),
            "expiredTime": iso_z(esim.expires_at),
            "validityDays": esim.validity_days,
        },
    }
