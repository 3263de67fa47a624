"""All SQL about ledger entries."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.wallet.models import LedgerEntry


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(self, entry: LedgerEntry) -> LedgerEntry:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def sum_for_account(self, account_id: int) -> int:
        result = await self.session.execute(
            select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
                LedgerEntry.account_id == account_id
            )
        )
        return int(result.scalar_one())

    async def refunded(self, reservation_id: int) -> int:
        result = await self.session.execute(
            select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
                LedgerEntry.reservation_id == reservation_id, LedgerEntry.kind == "refund"
            )
        )
        return int(result.scalar_one())
