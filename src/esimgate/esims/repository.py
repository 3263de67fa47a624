"""All SQL about eSIM records."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.catalog.models import CatalogPackage
from esimgate.catalog.repository import escape_like
from esimgate.esims.models import Esim


class EsimRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, *, iccid: str | None = None, esim_id: int | None = None) -> Esim | None:
        """Any account's eSIM (callers decide between 403 and 404); newest first for reused
        ICCIDs."""
        query = select(Esim)
        if esim_id is not None:
            query = query.where(Esim.id == esim_id)
        else:
            query = query.where(Esim.iccid == iccid)
        return (await self.session.execute(query.order_by(Esim.id.desc()))).scalars().first()

    async def owned(self, account_id: int, iccid: str) -> Esim | None:
        result = await self.session.execute(
            select(Esim)
            .where(Esim.account_id == account_id, Esim.iccid == iccid)
            .order_by(Esim.id.desc())
        )
        return result.scalars().first()

    async def first_of_order(self, account_id: int, reference: str) -> Esim | None:
        from esimgate.orders.models import Order

        result = await self.session.execute(
            select(Esim)
            .join(Order, Order.id == Esim.order_id)
            .where(Order.reference == reference, Order.account_id == account_id)
            .order_by(Esim.id)
        )
        return result.scalars().first()

    def _listing(
        self, account_id: int, status: str | None, search: str | None
    ) -> Select[Esim, CatalogPackage]:
        query = (
            select(Esim, CatalogPackage)
            .join(CatalogPackage, CatalogPackage.id == Esim.package_id)
            .where(Esim.account_id == account_id)
        )
        if status:
            query = query.where(Esim.status == status)
        if search:
            pattern = f"%{escape_like(search.lower())}%"
            query = query.where(
                or_(
                    Esim.iccid.like(f"%{escape_like(search)}%", escape="\\"),
                    func.lower(CatalogPackage.name).like(pattern, escape="\\"),
                    func.lower(CatalogPackage.code) == search.lower(),
                )
            )
        return query

    async def page(
        self, account_id: int, status: str | None, search: str | None, offset: int, limit: int
    ) -> tuple[Sequence[tuple[Esim, CatalogPackage]], int]:
        query = self._listing(account_id, status, search)
        total = await self.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await self.session.execute(
            query.order_by(Esim.created_at.desc(), Esim.id.desc()).offset(offset).limit(limit)
        )
        return [(esim, package) for esim, package in rows.all()], int(total or 0)
