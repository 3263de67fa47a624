"""The ledger's invariants, checkable at any time (after every test, and by operators)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account
from esimgate.orders.models import Order, OrderStatus
from esimgate.wallet.models import EntryKind, LedgerEntry, Reservation, ReservationState


async def ledger_violations(session: AsyncSession) -> list[str]:
    """Every broken invariant, in words; an empty list means the books are sound."""
    problems: list[str] = []
    sums = dict(
        (
            await session.execute(
                select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_minor)).group_by(
                    LedgerEntry.account_id
                )
            )
        ).all()
    )
    for account in (await session.execute(select(Account))).scalars():
        total = int(sums.get(account.id, 0) or 0)
        if total != account.balance_minor:
            problems.append(
                f"account {account.id}: balance {account.balance_minor} != ledger sum {total}"
            )
        if account.balance_minor < 0:
            problems.append(f"account {account.id}: negative balance {account.balance_minor}")
    entries: dict[int, dict[str, int]] = {}
    for entry in (await session.execute(select(LedgerEntry))).scalars():
        if entry.balance_after < 0:
            problems.append(f"entry {entry.id}: balance_after below zero")
        if entry.amount_minor < 0 and entry.reservation_id is None:
            problems.append(f"entry {entry.id}: a debit with no reservation")
        if entry.reservation_id is not None:
            kinds = entries.setdefault(entry.reservation_id, {})
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
            amount_key = f"amount:{entry.kind}"
            kinds[amount_key] = kinds.get(amount_key, 0) + entry.amount_minor
    reservations = {r.order_id: r for r in (await session.execute(select(Reservation))).scalars()}
    for reservation in reservations.values():
        kinds = entries.get(reservation.id, {})
        for kind in (EntryKind.RESERVE, EntryKind.CAPTURE, EntryKind.RELEASE):
            if kinds.get(kind, 0) > 1:
                problems.append(f"reservation {reservation.id}: {kinds[kind]} {kind} entries")
        if kinds.get(EntryKind.RESERVE) != 1:
            problems.append(f"reservation {reservation.id}: not exactly one reserve entry")
        if kinds.get(f"amount:{EntryKind.REFUND}", 0) > reservation.amount_minor:
            problems.append(f"reservation {reservation.id}: refunded more than charged")
        if kinds.get(EntryKind.REFUND) and not kinds.get(EntryKind.CAPTURE):
            problems.append(f"reservation {reservation.id}: refund without a charge")
        if kinds.get(EntryKind.CAPTURE) and kinds.get(EntryKind.RELEASE):
            problems.append(f"reservation {reservation.id}: both captured and released")
        expected = {
            ReservationState.HELD: (0, 0),
            ReservationState.CAPTURED: (1, 0),
            ReservationState.RELEASED: (0, 1),
        }[ReservationState(reservation.state)]
        actual = (kinds.get(EntryKind.CAPTURE, 0), kinds.get(EntryKind.RELEASE, 0))
        if actual != expected:
            problems.append(
                f"reservation {reservation.id}: state {reservation.state} but entries {actual}"
            )
    for order in (await session.execute(select(Order))).scalars():
        charged = reservations.get(order.id)
        if order.status == OrderStatus.COMPLETED and (
            charged is None or charged.state != ReservationState.CAPTURED
        ):
            problems.append(f"order {order.reference}: completed without exactly one charge")
        if (
            order.status == OrderStatus.FAILED
            and charged is not None
            and (charged.state != ReservationState.RELEASED)
        ):
            problems.append(f"order {order.reference}: failed but not released")
        if (
            order.status == OrderStatus.PENDING
            and charged is not None
            and (charged.state != ReservationState.HELD)
        ):
            problems.append(f"order {order.reference}: pending but charged settled")
        if order.status == OrderStatus.CANCELLED and (
            charged is None
            or entries.get(charged.id, {}).get(f"amount:{EntryKind.REFUND}") != charged.amount_minor
        ):
            problems.append(f"order {order.reference}: cancelled but not fully refunded")
    return problems
