"""All SQL about orders and the rows an order settles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account
from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.catalog.repository import escape_like
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
        """The order row locked, after its account row: every transaction that settles,
        refunds or reserves takes the account lock first, so they cannot deadlock (inserting
        rows that reference the account takes a shared lock on it in PostgreSQL)."""
        account_id = await self.session.scalar(select(Order.account_id).where(Order.id == order_id))
        if account_id is None:
            return None
        await self.session.execute(
            select(Account.id).where(Account.id == account_id).with_for_update()
        )
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


@dataclass(frozen=True, slots=True)
class OrderFilter:
    account_id: int
    status: str | None
    from_date: datetime | None
    to_date: datetime | None  # exclusive
    search: str | None


SORT_COLUMNS = {
    "created_at": Order.created_at,
    "amount": Order.amount_minor,
    "status": Order.status,
}


def _filtered(spec: OrderFilter) -> Select[Order]:
    query = select(Order).where(Order.account_id == spec.account_id)
    if spec.status:
        query = query.where(Order.status == spec.status)
    if spec.from_date:
        query = query.where(Order.created_at >= spec.from_date)
    if spec.to_date:
        query = query.where(Order.created_at < spec.to_date)
    if spec.search:
        pattern = f"%{escape_like(spec.search.lower())}%"
        query = query.where(
            or_(
                func.lower(Order.reference).like(pattern, escape="\\"),
                func.lower(Order.package_name).like(pattern, escape="\\"),
                func.lower(Order.package_code) == spec.search.lower(),
            )
        )
    return query


async def order_page(
    session: AsyncSession,
    spec: OrderFilter,
    sort_by: str,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[Sequence[Order], int, int]:
    """A page of orders, the filtered total, and the revenue (completed amounts) of the set."""
    query = _filtered(spec)
    filtered = query.subquery()
    total, revenue = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.sum(filtered.c.amount_minor).filter(filtered.c.status == "completed"), 0
                ),
            ).select_from(filtered)
        )
    ).one()
    column = SORT_COLUMNS[sort_by]
    ordering = (column.desc(), Order.id.desc()) if descending else (column.asc(), Order.id.asc())
    rows = await session.execute(query.order_by(*ordering).offset(offset).limit(limit))
    return rows.scalars().all(), int(total), int(revenue)
