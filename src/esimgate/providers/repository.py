"""All SQL about provider accounts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.providers.models import ProviderAccount


class ProviderAccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self, *, enabled_only: bool = False) -> Sequence[ProviderAccount]:
        query = select(ProviderAccount).order_by(ProviderAccount.id)
        if enabled_only:
            query = query.where(ProviderAccount.enabled.is_(True))
        return (await self.session.execute(query)).scalars().all()

    async def by_name(self, name: str) -> ProviderAccount | None:
        result = await self.session.execute(
            select(ProviderAccount).where(ProviderAccount.name == name)
        )
        return result.scalar_one_or_none()

    async def add(self, account: ProviderAccount) -> ProviderAccount:
        self.session.add(account)
        await self.session.flush()
        return account
