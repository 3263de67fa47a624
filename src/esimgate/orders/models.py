"""Orders (eSIM purchases and top-ups) and idempotency keys."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId


class OrderKind(enum.StrEnum):
    ESIM = "esim"
    TOPUP = "topup"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"  # money reserved; the upstream's outcome is not known yet
    COMPLETED = "completed"  # charged once, eSIM details known
    FAILED = "failed"  # nothing charged (reservation released)
    CANCELLED = "cancelled"  # every eSIM cancelled and refunded


class UpstreamState(enum.StrEnum):
    SENDING = "sending"  # about to call, or calling, the upstream
    ACCEPTED = "accepted"  # the upstream took it and provisions later
    UNKNOWN = "unknown"  # the call's outcome is ambiguous: reconciliation asks by reference
    DONE = "done"  # the upstream's answer is final


class Order(Base):
    """One purchase on behalf of an account; its reference goes upstream as our idempotency id."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("quantity BETWEEN 1 AND 10", name="quantity_range"),
        CheckConstraint("amount_minor = unit_price_minor * quantity", name="amount_is_total"),
        Index("ix_orders_account_created", "account_id", "created_at"),
        Index("ix_orders_status_updated", "status", "updated_at"),
        # Provider webhooks that name only the upstream's order id find the order by it.
        Index("ix_orders_provider_order", "provider_account_id", "provider_order_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.PENDING)
    upstream_state: Mapped[str] = mapped_column(String(16), default=UpstreamState.SENDING)
    package_id: Mapped[int] = mapped_column(ForeignKey("catalog_packages.id"))
    package_code: Mapped[str] = mapped_column(String(64))
    package_name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    unit_price_minor: Mapped[int]
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # The cost snapshot of the offer this order was routed to (1/10000 units).
    unit_cost_e4: Mapped[int]
    provider_account_id: Mapped[int] = mapped_column(ForeignKey("provider_accounts.id"))
    provider_code: Mapped[str] = mapped_column(String(128))
    provider_order_id: Mapped[str | None] = mapped_column(String(128), default=None)
    # The topped-up eSIM (top-ups only). No foreign key: esims already point at orders.
    esim_id: Mapped[int | None] = mapped_column(default=None, index=True)
    # The API key that placed it: its webhook secret signs deliveries to ``callback_url``.
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), default=None)
    callback_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    processing_time_ms: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class IdempotencyState(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    DONE = "done"  # the stored response is replayed
    FAILED = "failed"  # a definite failure: the key may be used again


class IdempotencyKey(Base):
    """A client's idempotency key, per account, with the response it produced."""

    __tablename__ = "idempotency_keys"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=IdempotencyState.IN_PROGRESS)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), default=None)
    response: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
