"""Configured upstream provider accounts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId


class ProviderAccount(Base):
    """One account at one upstream (several of one type are allowed)."""

    __tablename__ = "provider_accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str | None] = mapped_column(String(500), default=None)
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
