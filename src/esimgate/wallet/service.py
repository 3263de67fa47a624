"""Moving money: every change to a balance is a new ledger entry, made under the account's
row lock, in the caller's transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account
from esimgate.accounts.repository import AccountRepository
from esimgate.clock import Clock
from esimgate.wallet.models import EntryKind, LedgerEntry, Reservation, ReservationState
from esimgate.wallet.repository import LedgerRepository


class WalletError(ValueError):
    """A movement the wallet refuses."""


class InsufficientFunds(WalletError):
    def __init__(self, balance_minor: int, required_minor: int) -> None:
        super().__init__("insufficient balance")
        self.balance_minor = balance_minor
        self.required_minor = required_minor


async def credit(
    session: AsyncSession, clock: Clock, account_id: int, amount_minor: int, note: str | None
) -> LedgerEntry:
    """Add money to an account (operator top-up of the prepaid balance)."""
    if amount_minor <= 0:
        raise WalletError("a credit must be a positive amount")
    account = await lock_account(session, account_id)
    return await _append(session, clock, account, EntryKind.CREDIT, amount_minor, None, note)


async def lock_account(session: AsyncSession, account_id: int) -> Account:
    """The account row, locked for the rest of the transaction (balance decisions need it)."""
    account = await AccountRepository(session).get_for_update(account_id)
    if account is None:
        raise WalletError(f"no account {account_id}")
    return account


async def reserve(
    session: AsyncSession, clock: Clock, account: Account, order_id: int, amount_minor: int
) -> Reservation:
    """Set an order's amount aside. ``account`` must have been locked by this transaction."""
    if account.balance_minor < amount_minor:
        raise InsufficientFunds(account.balance_minor, amount_minor)
    reservation = Reservation(
        account_id=account.id,
        order_id=order_id,
        amount_minor=amount_minor,
        currency=account.currency,
        state=ReservationState.HELD,
        created_at=clock.now(),
    )
    session.add(reservation)
    await session.flush()
    await _append(session, clock, account, EntryKind.RESERVE, -amount_minor, reservation.id, None)
    return reservation


async def capture(session: AsyncSession, clock: Clock, reservation: Reservation) -> None:
    """The reserved amount becomes the charge (exactly once)."""
    if reservation.state != ReservationState.HELD:
        raise WalletError(f"reservation {reservation.id} is {reservation.state}, not held")
    account = await lock_account(session, reservation.account_id)
    reservation.state = ReservationState.CAPTURED
    reservation.settled_at = clock.now()
    await _append(session, clock, account, EntryKind.CAPTURE, 0, reservation.id, None)


async def release(session: AsyncSession, clock: Clock, reservation: Reservation) -> None:
    """Give the reserved amount back after a definite failure (exactly once)."""
    if reservation.state != ReservationState.HELD:
        raise WalletError(f"reservation {reservation.id} is {reservation.state}, not held")
    account = await lock_account(session, reservation.account_id)
    reservation.state = ReservationState.RELEASED
    reservation.settled_at = clock.now()
    await _append(
        session, clock, account, EntryKind.RELEASE, reservation.amount_minor, reservation.id, None
    )


async def refund(
    session: AsyncSession, clock: Clock, reservation: Reservation, amount_minor: int, note: str
) -> LedgerEntry:
    """Pay back part of a captured charge (cancelled eSIMs); never more than was charged."""
    if reservation.state != ReservationState.CAPTURED:
        raise WalletError(f"reservation {reservation.id} is {reservation.state}, not captured")
    account = await lock_account(session, reservation.account_id)
    refunded = await LedgerRepository(session).refunded(reservation.id)
    if not 0 < amount_minor <= reservation.amount_minor - refunded:
        raise WalletError("a refund must be positive and at most what is left of the charge")
    return await _append(
        session, clock, account, EntryKind.REFUND, amount_minor, reservation.id, note
    )


async def _append(
    session: AsyncSession,
    clock: Clock,
    account: Account,
    kind: EntryKind,
    amount_minor: int,
    reservation_id: int | None,
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
        reservation_id=reservation_id,
        note=note,
        created_at=clock.now(),
    )
    return await LedgerRepository(session).append(entry)
