"""eSIM records as esimgate keeps them for its customers."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId


class EsimStatus(enum.StrEnum):
    """The one status the API exposes (spec section 11)."""

    NEW = "NEW"
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    DEPLETED = "DEPLETED"
    DELETED = "DELETED"


class Esim(Base):
    """One eSIM bought for an account."""

    __tablename__ = "esims"
    __table_args__ = (
        # Upstreams may reuse ICCIDs (eSIM Access does); their own stable id is the key.
        UniqueConstraint("provider_account_id", "provider_esim_id", name="provider_esim"),
        Index("ix_esims_account_created", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    iccid: Mapped[str] = mapped_column(String(22), index=True)
    provider_account_id: Mapped[int] = mapped_column(ForeignKey("provider_accounts.id"))
    provider_esim_id: Mapped[str] = mapped_column(String(64))
    provider_code: Mapped[str] = mapped_column(String(128))
    package_id: Mapped[int] = mapped_column(ForeignKey("catalog_packages.id"))
    smdp_address: Mapped[str] = mapped_column(String(255))
    matching_id: Mapped[str] = mapped_column(String(255))
    lpa: Mapped[str] = mapped_column(String(512))
    qr_token: Mapped[str] = mapped_column(String(64), unique=True)  # the unguessable QR URL part
    status: Mapped[str] = mapped_column(String(16), default=EsimStatus.NEW)
    # The three internal dimensions and every raw upstream value they came from.
    line_status: Mapped[str | None] = mapped_column(String(32), default=None)
    profile_status: Mapped[str | None] = mapped_column(String(32), default=None)
    plan_status: Mapped[str | None] = mapped_column(String(32), default=None)
    raw_status: Mapped[dict[str, Any]] = mapped_column(default=dict)
    total_bytes: Mapped[int | None]  # None = unlimited
    used_bytes: Mapped[int] = mapped_column(default=0)
    validity_days: Mapped[int]
    unit_price_minor: Mapped[int]  # what the customer paid for this eSIM (refund amount)
    activated_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    ever_installed: Mapped[bool] = mapped_column(default=False)
    # What the network last told us (live status), kept for the status endpoints.
    last_network: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    device_model: Mapped[str | None] = mapped_column(String(100), default=None)
    device_imei: Mapped[str | None] = mapped_column(String(20), default=None)
    last_usage_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    usage_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the background sync should next ask the upstream (None: not tracked any more).
    next_sync_at: Mapped[datetime | None] = mapped_column(default=None, index=True)


class UsageDay(Base):
    """The cumulative usage last observed on one day: daily history without storing samples."""

    __tablename__ = "usage_days"

    esim_id: Mapped[int] = mapped_column(ForeignKey("esims.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    used_bytes: Mapped[int]  # cumulative at the day's last observation
    observed_at: Mapped[datetime]


class EsimNotice(Base):
    """An event already emitted for an eSIM (``esim.usage_threshold:80`` …): exactly once each."""

    __tablename__ = "esim_notices"

    esim_id: Mapped[int] = mapped_column(ForeignKey("esims.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]
