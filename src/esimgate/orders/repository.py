"""All SQL about orders and the rows an order settles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.esims.models import Esim
from esimgate.orders.models import Order, OrderStatus
from esimgate.providers.models import ProviderAccount
from esimgate.wallet.models import Reservation


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def sellable_package(self, code: str, *, topup: bool) -> CatalogPackage | None:
        return (
            await self.session.execute(
                select(CatalogPackage).where(
                    CatalogPackage.code == code,
                    CatalogPackage.active.is_(True),
                    CatalogPackage.is_topup.is_(topup),
                )
            )
        ).scalar_one_or_none()

    async def offers(self, package_id: int, currency: str) -> Sequence[PackageOffer]:
        """Active offers from enabled providers, cheapest first (the routing order)."""
        result = await self.session.execute(
            select(PackageOffer)
            .join(ProviderAccount, ProviderAccount.id == PackageOffer.provider_account_id)
            .where(
                PackageOffer.package_id == package_id,
                PackageOffer.active.is_(True),
                PackageOffer.currency == currency,
                ProviderAccount.enabled.is_(True),
            )
            .order_by(PackageOffer.cost_e4, PackageOffer.id)
        )
        return result.scalars().all()

    async def add(self, row: Order | Esim) -> None:
        self.session.add(row)
        await self.session.flush()

    async def locked(self, order_id: int) -> Order | None:
        result = await self.session.execute(
            select(Order).where(Order.id == order_id).with_for_update()
        )
        return result.scalar_one_or_none()

    async def by_reference(self, account_id: int, reference: str) -> Order | None:
        result = await self.session.execute(
            select(Order).where(Order.reference == reference, Order.account_id == account_id)
        )
        return result.scalar_one_or_none()

    async def reservation(self, order_id: int) -> Reservation | None:
        result = await self.session.execute(
            select(Reservation).where(Reservation.order_id == order_id)
        )
        return result.scalar_one_or_none()

    async def esims(self, order_id: int) -> Sequence[Esim]:
        result = await self.session.execute(
            select(Esim).where(Esim.order_id == order_id).order_by(Esim.id)
        )
        return result.scalars().all()

    async def pending_before(self, moment: datetime, limit: int = 500) -> Sequence[int]:
        result = await self.session.execute(
            select(Order.id)
            .where(Order.status == OrderStatus.PENDING, Order.updated_at <= moment)
            .order_by(Order.updated_at)
            .limit(limit)
        )
        return result.scalars().all()
