"""Read models for orders (spec 6.2 and 6.3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.catalog.models import CatalogPackage
from esimgate.clock import iso_z
from esimgate.esims.models import Esim, EsimStatus
from esimgate.esims.presenter import install_links, qr_url
from esimgate.money import render
from esimgate.orders.errors import OrderNotFound
from esimgate.orders.models import Order, OrderStatus
from esimgate.orders.repository import OrderRepository

PAYMENT_STATUS = {
    OrderStatus.PENDING: "pending",
    OrderStatus.COMPLETED: "succeeded",
    OrderStatus.FAILED: "failed",
    OrderStatus.CANCELLED: "refunded",
}


async def order_status(
    session: AsyncSession, account_id: int, reference: str, base_url: str
) -> dict[str, Any]:
    """GET /esims/order: another account's reference is simply not found."""
    repo = OrderRepository(session)
    order = await repo.by_reference(account_id, reference)
    if order is None:
        raise OrderNotFound()
    package = await session.get(CatalogPackage, order.package_id)
    esims = [_esim(e, base_url) for e in await repo.esims(order.id)]
    pending = order.status == OrderStatus.PENDING
    placeholder = {
        "iccid": None,
        "status": "Pending" if pending else None,
        "qrCodeUrl": None,
        "directAppleInstallUrl": None,
        "directAndroidInstallUrl": None,
        "lpaString": None,
        "isPending": pending,
        "unlimited": package.data_bytes is None if package else False,
        "totalVolume": package.data_bytes if package else None,
        "totalDuration": package.validity_days if package else None,
        "expiredTime": None,
    }
    return {
        "id": order.id,
        "packageName": order.package_name,
        "packageCode": order.package_code,
        "status": "pending_details" if pending else order.status,
        "quantity": order.quantity,
        "amount": render(order.amount_minor, order.currency),
        "finalPrice": render(order.amount_minor, order.currency),
        "currency": order.currency,
        "orderDate": iso_z(order.created_at),
        "orderReference": order.reference,
        "paymentMethod": "balance",
        "paymentStatus": PAYMENT_STATUS[OrderStatus(order.status)],
        "esim": esims[0] if esims else placeholder,
        "esims": esims,
    }


def _esim(esim: Esim, base_url: str) -> dict[str, Any]:
    return {
        "id": esim.id,
        "iccid": esim.iccid,
        "status": "New" if esim.status == EsimStatus.NEW else esim.status.title(),
        "qrCodeUrl": qr_url(base_url, esim),
        **install_links(esim),
        "isPending": False,
        "unlimited": esim.total_bytes is None,
        "totalVolume": esim.total_bytes,
        "totalDuration": esim.validity_days,
        "expiredTime": iso_z(esim.expires_at),
    }


def order_row(order: Order) -> dict[str, Any]:
    """One line of GET /orders."""
    return {
        "id": order.id,
        "order_reference": order.reference,
        "package_name": order.package_name,
        "package_code": order.package_code,
        "amount": render(order.amount_minor, order.currency),
        "currency": order.currency,
        "quantity": order.quantity,
        "status": order.status,
        "flag_url": None,
        "created_at": iso_z(order.created_at),
        "type": order.kind,
    }
