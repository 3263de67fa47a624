"""Moving money: every change to a balance is a new ledger entry, under a row lock."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account
from esimgate.accounts.repository import AccountRepository
from esimgate.clock import Clock
from esimgate.wallet.models import EntryKind, LedgerEntry
from esimgate.wallet.repository import LedgerRepository


class WalletError(ValueError):
    """A movement the wallet refuses."""


async def credit(
    session: AsyncSession, clock: Clock, account_id: int, amount_minor: int, note: str | None
) -> LedgerEntry:
    """Add money to an account (operator top-up of the prepaid balance)."""
    if amount_minor <= 0:
        raise WalletError("a credit must be a positive amount")
    account = await _locked(session, account_id)
    return await _append(session, clock, account, EntryKind.CREDIT, amount_minor, note)


async def _locked(session: AsyncSession, account_id: int) -> Account:
    account = await AccountRepository(session).get_for_update(account_id)
    if account is None:
        raise WalletError(f"no account {account_id}")
    return account


async def _append(
    session: AsyncSession,
    clock: Clock,
    account: Account,
    kind: EntryKind,
    amount_minor: int,
    note: str | None,
) -> LedgerEntry:
    balance_after = account.balance_minor + amount_minor
    if balance_after < 0:
        raise WalletError("the balance cannot go below zero")
    account.balance_minor = balance_after
    entry = LedgerEntry(
        account_id=account.id,
        kind=kind,
        amount_minor=amount_minor,
        balance_after=balance_after,
        currency=account.currency,
        note=note,
        created_at=clock.now(),
    )
    return await LedgerRepository(session).append(entry)
