"""Ledger entries: the wallet's only source of truth; rows are never updated or deleted."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId


class EntryKind(enum.StrEnum):
    CREDIT = "credit"  # money in (operator credit)


class LedgerEntry(Base):
    """One signed movement of an account's money, in the account currency's minor unit."""

    __tablename__ = "ledger_entries"
    __table_args__ = (CheckConstraint("balance_after >= 0", name="balance_after_non_negative"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int]  # signed: credits positive, debits negative
    balance_after: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime]
