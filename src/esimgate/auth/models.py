"""API keys and the rows behind replay protection and rate limits."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId


class ApiKeyStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class ApiKey(Base):
    """One of an account's API keys; the secret is stored encrypted, never in clear."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    access_code: Mapped[str] = mapped_column(String(64), unique=True)
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=ApiKeyStatus.ACTIVE)
    rate_limit_per_hour: Mapped[int | None] = mapped_column(default=None)
    ip_allowlist: Mapped[list[Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class UsedRequestId(Base):
    """A consumed RT-RequestID; the row's existence is the replay guard (unique key)."""

    __tablename__ = "used_request_ids"
    __table_args__ = (Index("ix_used_request_ids_created_at", "created_at"),)

    access_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime]
    # What the request created (e.g. {"orderReference": …}), shown to a client that replays it.
    resource: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class RateCounter(Base):
    """Requests counted in one fixed window for one bucket (an API key, or a client IP)."""

    __tablename__ = "rate_counters"
    __table_args__ = (Index("ix_rate_counters_window_end", "window_end"),)

    bucket: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[int] = mapped_column(primary_key=True)  # epoch seconds
    window_end: Mapped[int]
    count: Mapped[int] = mapped_column(default=0)
