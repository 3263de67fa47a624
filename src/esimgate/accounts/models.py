"""Business accounts."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class Account(Base):
    """A business customer with a prepaid wallet in one currency."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("markup_percent_bp >= 0", name="markup_percent_non_negative"),
        CheckConstraint("markup_fixed_minor >= 0", name="markup_fixed_non_negative"),
        CheckConstraint("balance_minor >= 0", name="balance_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=AccountStatus.ACTIVE)
    # Markup on the upstream cost: percent in basis points (1250 = 12.50 %) plus a fixed amount
    # in the currency's minor unit per package.
    markup_percent_bp: Mapped[int] = mapped_column(default=0)
    markup_fixed_minor: Mapped[int] = mapped_column(default=0)
    # Cached sum of the account's ledger entries, updated only together with a new entry and
    # checked against the ledger; the CHECK is the last guard against an overdraft.
    balance_minor: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
