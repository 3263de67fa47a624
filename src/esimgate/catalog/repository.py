"""All SQL about catalogue packages and offers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.providers.models import ProviderAccount


@dataclass(frozen=True, slots=True)
class PricedPackage:
    package: CatalogPackage
    cost_e4: int  # cheapest active offer from an enabled provider


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def packages_by_identity(self) -> dict[str, CatalogPackage]:
        result = await self.session.execute(select(CatalogPackage))
        return {p.identity_key: p for p in result.scalars()}

    async def offers_of(self, provider_account_id: int) -> dict[str, PackageOffer]:
        result = await self.session.execute(
            select(PackageOffer).where(PackageOffer.provider_account_id == provider_account_id)
        )
        return {o.provider_code: o for o in result.scalars()}

    async def add(self, row: CatalogPackage | PackageOffer) -> None:
        self.session.add(row)
        await self.session.flush()

    async def package_ids_with_active_offers(self) -> set[int]:
        result = await self.session.execute(
            select(PackageOffer.package_id)
            .join(ProviderAccount, ProviderAccount.id == PackageOffer.provider_account_id)
            .where(PackageOffer.active.is_(True), ProviderAccount.enabled.is_(True))
            .distinct()
        )
        return set(result.scalars())

    def _priced(self, currency: str) -> Select[CatalogPackage, int]:
        cheapest = (
            select(PackageOffer.package_id, func.min(PackageOffer.cost_e4).label("cost_e4"))
            .join(ProviderAccount, ProviderAccount.id == PackageOffer.provider_account_id)
            .where(
                PackageOffer.active.is_(True),
                ProviderAccount.enabled.is_(True),
                PackageOffer.currency == currency,
            )
            .group_by(PackageOffer.package_id)
            .subquery()
        )
        return (
            select(CatalogPackage, cheapest.c.cost_e4)
            .join(cheapest, cheapest.c.package_id == CatalogPackage.id)
            .where(CatalogPackage.active.is_(True))
        )

    async def search(
        self,
        *,
        currency: str,
        search: str | None,
        kind: str | None,
        topups: bool,
        offset: int,
        limit: int,
    ) -> tuple[Sequence[PricedPackage], int]:
        """One page of sellable packages and the total matching."""
        query = self._priced(currency).where(CatalogPackage.is_topup.is_(topups))
        if kind:
            query = query.where(CatalogPackage.kind == kind)
        if search:
            term = escape_like(search.lower())
            # Two letters are an ISO country code, matched whole ('jp' is Japan, not every
            # name containing "jp"); longer terms match names, regions and countries as
            # substrings. A package code matches exactly either way.
            by_text = (
                CatalogPackage.search_text.like(f"%#{term}#%", escape="\\")
                if len(search) <= 2
                else CatalogPackage.search_text.like(f"%{term}%", escape="\\")
            )
            query = query.where(or_(by_text, func.lower(CatalogPackage.code) == search.lower()))
        total = await self.session.scalar(select(func.count()).select_from(query.subquery()))
        page = await self.session.execute(
            query.order_by(CatalogPackage.kind, CatalogPackage.name, CatalogPackage.id)
            .offset(offset)
            .limit(limit)
        )
        return [PricedPackage(pkg, cost) for pkg, cost in page.all()], int(total or 0)
