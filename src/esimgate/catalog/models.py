"""Catalogue packages and the upstream offers behind them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId


class CatalogPackage(Base):
    """A product we sell, identified by what it is (coverage, data, validity, extras).

    Several upstream offers may stand behind one package; the package code carries no provider
    prefix and is derived from the identity, so the same product from two upstreams is one code.
    """

    __tablename__ = "catalog_packages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    identity_key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), index=True)  # local | regional | global
    region: Mapped[str] = mapped_column(String(100))
    countries: Mapped[list[Any]]  # [{"code": "JP", "name": "Japan"}, …]
    networks: Mapped[list[Any]]  # locationNetworkList, per country
    data_bytes: Mapped[int | None]  # None = unlimited
    validity_days: Mapped[int]
    voice_minutes: Mapped[int] = mapped_column(default=0)
    sms_count: Mapped[int] = mapped_column(default=0)
    is_topup: Mapped[bool] = mapped_column(default=False, index=True)
    rechargeable: Mapped[bool] = mapped_column(default=False)
    renewable: Mapped[bool] = mapped_column(default=False)
    daily_data: Mapped[bool] = mapped_column(default=False)
    search_text: Mapped[str] = mapped_column(Text)  # lower-case name, region, countries, code
    active: Mapped[bool] = mapped_column(default=True, index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PackageOffer(Base):
    """One upstream's offer of a catalogue package, with its wholesale cost snapshot."""

    __tablename__ = "package_offers"
    __table_args__ = (
        UniqueConstraint("provider_account_id", "provider_code", name="provider_code"),
        CheckConstraint("cost_e4 >= 0", name="cost_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("catalog_packages.id"), index=True)
    provider_account_id: Mapped[int] = mapped_column(ForeignKey("provider_accounts.id"))
    provider_code: Mapped[str] = mapped_column(String(128))
    cost_e4: Mapped[int]  # 1/10000 of the currency unit
    currency: Mapped[str] = mapped_column(String(3))
    topup_for: Mapped[list[Any]]  # provider codes a top-up applies to ([] = any compatible)
    active: Mapped[bool] = mapped_column(default=True)
    synced_at: Mapped[datetime]
