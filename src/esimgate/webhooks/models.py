"""The transactional outbox: one row per event, committed with the change it reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    event: Mapped[str] = mapped_column(String(64))  # order.completed, esim.provisioned, …
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True, default=None)
    esim_id: Mapped[int | None] = mapped_column(ForeignKey("esims.id"), default=None)
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
