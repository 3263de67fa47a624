"""The wallet: reservations and ledger entries. Ledger rows are never updated or deleted."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId


class EntryKind(enum.StrEnum):
    CREDIT = "credit"  # money in (operator credit)
    RESERVE = "reserve"  # an order's amount set aside (a debit)
    CAPTURE = "capture"  # the reservation became the charge (moves no money: a marker)
    RELEASE = "release"  # the reservation given back after a definite failure
    REFUND = "refund"  # money back for cancelled eSIMs of a captured order


class ReservationState(enum.StrEnum):
    HELD = "held"
    CAPTURED = "captured"
    RELEASED = "released"


class Reservation(Base):
    """Money set aside for one order or top-up, until the upstream's outcome is known."""

    __tablename__ = "reservations"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16), default=ReservationState.HELD)
    created_at: Mapped[datetime]
    settled_at: Mapped[datetime | None] = mapped_column(default=None)


class LedgerEntry(Base):
    """One signed movement of an account's money, in the account currency's minor unit."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("balance_after >= 0", name="balance_after_non_negative"),
        CheckConstraint(
            "(kind = 'capture' AND amount_minor = 0)"
            " OR (kind IN ('reserve') AND amount_minor < 0)"
            " OR (kind IN ('credit', 'release', 'refund') AND amount_minor > 0)",
            name="sign_matches_kind",
        ),
        CheckConstraint(
            "kind = 'credit' OR reservation_id IS NOT NULL", name="debits_have_reservation"
        ),
        # At most one reserve, capture and release per reservation (refunds may come in
        # parts, one per cancellation, and are bounded by the charge in the service).
        Index(
            "uq_ledger_entries_reservation_kind",
            "reservation_id",
            "kind",
            unique=True,
            sqlite_where=text("kind != 'refund'"),
            postgresql_where=text("kind != 'refund'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int]  # signed: credits positive, debits negative
    balance_after: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("reservations.id"), default=None)
    note: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime]
