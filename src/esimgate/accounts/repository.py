"""All SQL about accounts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, account: Account) -> Account:
        self.session.add(account)
        await self.session.flush()
        return account

    async def get(self, account_id: int) -> Account | None:
        return await self.session.get(Account, account_id)

    async def get_for_update(self, account_id: int) -> Account | None:
        """The account row, locked until the transaction ends (a no-op lock on SQLite,
        where BEGIN IMMEDIATE already serialises writers)."""
        result = await self.session.execute(
            select(Account).where(Account.id == account_id).with_for_update()
        )
        return result.scalar_one_or_none()

    async def find(self, ref: str) -> Account | None:
        """By id, or by exact name when ``ref`` is not a number."""
        if ref.isdigit():
            return await self.get(int(ref))
        result = await self.session.execute(select(Account).where(Account.name == ref))
        return result.scalars().first()

    async def list(self) -> Sequence[Account]:
        result = await self.session.execute(select(Account).order_by(Account.id))
        return result.scalars().all()
