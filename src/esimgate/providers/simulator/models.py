"""The simulator's own tables: what a real upstream would keep on its side of the wire.

Rows are scoped by ``account`` (the provider account's name) so two simulator accounts behave as
two separate upstreams: a reference sent to one is unknown to the other, which is what failover
between them needs.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId
from esimgate.providers.base import PurchaseState


class ProfileState(enum.StrEnum):
    """The profile as the SM-DP+ sees it."""

    RELEASED = "released"  # ready to download, never installed
    DOWNLOADED = "downloaded"
    INSTALLED = "installed"
    ENABLED = "enabled"
    DISABLED = "disabled"
    DELETED = "deleted"


class LineState(enum.StrEnum):
    """The subscription on the network."""

    NOT_ACTIVE = "not_active"  # never attached
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"


class PlanState(enum.StrEnum):
    """The data plan."""

    UNUSED = "unused"
    IN_USE = "in_use"
    DEPLETED = "depleted"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class SimOrder(Base):
    """One purchase, keyed by our reference: the idempotency key, like eSIM Access transactionId."""

    __tablename__ = "sim_orders"
    __table_args__ = (UniqueConstraint("account", "reference"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(200))
    package_code: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int]
    unit_cost_e4: Mapped[int]  # the catalogue cost when bought: what a cancel refunds
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16), default=PurchaseState.PENDING)
    created_at: Mapped[datetime]
    ready_at: Mapped[datetime | None] = mapped_column(default=None)  # async orders: when allocated

    @property
    def provider_order_id(self) -> str:
        # Derived from the row id rather than stored: it exists the moment the row does, and the
        # id is what makes it unique.
        return f"SIMO-{self.id:010d}"


class SimEsim(Base):
    """One allocated eSIM and its three state dimensions (profile, line, plan)."""

    __tablename__ = "sim_esims"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("sim_orders.id"), index=True)
    iccid: Mapped[str] = mapped_column(String(22), unique=True)
    provider_esim_id: Mapped[str] = mapped_column(String(32), unique=True)
    package_code: Mapped[str] = mapped_column(String(64))
    smdp_address: Mapped[str] = mapped_column(String(255))
    matching_id: Mapped[str] = mapped_column(String(64))
    lpa: Mapped[str] = mapped_column(String(400))
    total_bytes: Mapped[int | None]  # None = unlimited; for day passes the per-day allowance
    used_bytes: Mapped[int] = mapped_column(default=0)
    validity_days: Mapped[int]  # counts from first attach; grows with top-ups
    activated_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)  # None until first attach
    profile_state: Mapped[str] = mapped_column(String(16), default=ProfileState.RELEASED)
    line_state: Mapped[str] = mapped_column(String(16), default=LineState.NOT_ACTIVE)
    plan_state: Mapped[str] = mapped_column(String(16), default=PlanState.UNUSED)
    device_model: Mapped[str | None] = mapped_column(String(100), default=None)
    device_imei: Mapped[str | None] = mapped_column(String(20), default=None)
    network_operator: Mapped[str | None] = mapped_column(String(100), default=None)
    network_mcc: Mapped[str | None] = mapped_column(String(3), default=None)
    network_mnc: Mapped[str | None] = mapped_column(String(3), default=None)
    network_country: Mapped[str | None] = mapped_column(String(2), default=None)
    network_type: Mapped[str | None] = mapped_column(String(16), default=None)
    last_usage_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]

    def settle(self, now: datetime) -> None:
        """Apply what time alone does: a live plan past its expiry is expired."""
        live = (PlanState.UNUSED, PlanState.IN_USE, PlanState.DEPLETED)
        if self.expires_at is not None and self.expires_at <= now and self.plan_state in live:
            self.plan_state = PlanState.EXPIRED


class SimTopUp(Base):
    """One applied top-up, keyed by our reference; keeps its outcome so a replay returns it."""

    __tablename__ = "sim_topups"
    __table_args__ = (UniqueConstraint("account", "reference"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(200))
    esim_id: Mapped[int] = mapped_column(BigId, ForeignKey("sim_esims.id"), index=True)
    package_code: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int]
    unit_cost_e4: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    total_bytes_after: Mapped[int | None]
    expires_at_after: Mapped[datetime | None]
    created_at: Mapped[datetime]


SIMULATOR_TABLES = tuple(
    Base.metadata.tables[model.__tablename__] for model in (SimOrder, SimEsim, SimTopUp)
)
"""For tests that build just these tables with ``Base.metadata.create_all(tables=...)``."""
