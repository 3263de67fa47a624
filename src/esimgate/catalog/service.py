"""Catalogue sync from providers, and the priced catalogue an account sees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account
from esimgate.accounts.pricing import price_minor
from esimgate.catalog.identity import identity_key, package_code
from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.catalog.repository import CatalogRepository, PricedPackage
from esimgate.clock import Clock
from esimgate.providers.base import Coverage, ProviderPackage
from esimgate.providers.models import ProviderAccount


@dataclass
class SyncReport:
    provider: str
    added: int = 0  # new offers
    updated: int = 0  # offers whose cost or shape changed
    delisted: int = 0  # offers the upstream no longer lists
    unchanged: int = 0
    price_changes: list[tuple[str, int, int]] = field(default_factory=list)  # code, old, new


def flag_url(country_code: str | None) -> str | None:
    return f"https://flagcdn.com/w80/{country_code.lower()}.png" if country_code else None


def _networks(coverage: Sequence[Coverage]) -> list[dict[str, Any]]:
    """The locationNetworkList shape of the seeds, plus MCC/MNC per operator."""
    return [
        {
            "locationName": c.country_name,
            "locationCode": c.country_code,
            "locationLogo": flag_url(c.country_code),
            "operatorList": [
                {
                    "operatorName": n.operator,
                    "networkType": "5G" if "5G" in n.radio else (n.radio[-1] if n.radio else "4G"),
                    "mcc": n.mcc,
                    "mnc": n.mnc,
                }
                for n in c.networks
            ],
        }
        for c in coverage
    ]


def _search_text(package: ProviderPackage) -> str:
    """Names are matched as substrings; codes only whole (see CatalogRepository.search)."""
    words = [package.name, package.region, *(c.country_name for c in package.coverage)]
    codes = [c.country_code for c in package.coverage]
    return (" | ".join(words) + " |" + "".join(f" #{code}#" for code in codes)).lower()


async def sync_provider(
    session: AsyncSession,
    clock: Clock,
    account: ProviderAccount,
    packages: Sequence[ProviderPackage],
) -> SyncReport:
    """Copy one provider account's packages into the catalogue with their cost snapshot."""
    repo = CatalogRepository(session)
    now = clock.now()
    report = SyncReport(provider=account.name)
    by_identity = await repo.packages_by_identity()
    offers = await repo.offers_of(account.id)
    seen: set[str] = set()
    for item in packages:
        if item.provider_code in seen:
            continue  # an upstream listing one code twice: the first wins
        seen.add(item.provider_code)
        key = identity_key(item)
        package = by_identity.get(key)
        if package is not None and package.name == item.name:
            # Keep what describes the product current (operators change, search evolves).
            package.networks = _networks(item.coverage)
            package.search_text = _search_text(item)
            package.rechargeable = package.rechargeable or item.rechargeable
        if package is None:
            code = package_code(key, is_topup=item.is_topup)
            package = CatalogPackage(
                code=code,
                identity_key=key,
                name=item.name,
                kind=item.kind.value,
                region=item.region,
                countries=[{"code": c.country_code, "name": c.country_name} for c in item.coverage],
                networks=_networks(item.coverage),
                data_bytes=item.data_bytes,
                validity_days=item.validity_days,
                voice_minutes=item.voice_minutes,
                sms_count=item.sms_count,
                is_topup=item.is_topup,
                rechargeable=item.rechargeable,
                renewable=item.renewable,
                daily_data=item.daily_data,
                search_text=_search_text(item),
                active=True,
                created_at=now,
                updated_at=now,
            )
            await repo.add(package)
            by_identity[key] = package
        offer = offers.get(item.provider_code)
        topup_for = sorted(item.topup_for)
        if offer is None:
            offer = PackageOffer(
                package_id=package.id,
                provider_account_id=account.id,
                provider_code=item.provider_code,
                cost_e4=item.cost.amount_e4,
                currency=item.cost.currency,
                topup_for=topup_for,
                active=True,
                synced_at=now,
            )
            await repo.add(offer)
            report.added += 1
            continue
        changed = False
        if offer.cost_e4 != item.cost.amount_e4 or offer.currency != item.cost.currency:
            report.price_changes.append((package.code, offer.cost_e4, item.cost.amount_e4))
            offer.cost_e4, offer.currency = item.cost.amount_e4, item.cost.currency
            changed = True
        if offer.package_id != package.id or not offer.active or offer.topup_for != topup_for:
            offer.package_id, offer.active, offer.topup_for = package.id, True, topup_for
            changed = True
        offer.synced_at = now
        report.updated += changed
        report.unchanged += not changed
    for code, offer in offers.items():
        if code not in seen and offer.active:
            offer.active = False
            report.delisted += 1
    await session.flush()
    return report


async def refresh_package_activity(session: AsyncSession, clock: Clock) -> None:
    """A package is on sale while at least one enabled provider actively offers it."""
    repo = CatalogRepository(session)
    live = await repo.package_ids_with_active_offers()
    for package in (await repo.packages_by_identity()).values():
        active = package.id in live
        if package.active != active:
            package.active = active
            package.updated_at = clock.now()
    await session.flush()


@dataclass(frozen=True, slots=True)
class Priced:
    package: CatalogPackage
    price_minor: int
    cost_e4: int


async def priced_catalogue(
    session: AsyncSession,
    account: Account,
    *,
    search: str | None,
    kind: str | None,
    topups: bool,
    offset: int,
    limit: int,
) -> tuple[list[Priced], int]:
    """A page of the account's catalogue with its own prices."""
    rows, total = await CatalogRepository(session).search(
        currency=account.currency,
        search=search,
        kind=kind,
        topups=topups,
        offset=offset,
        limit=limit,
    )
    return [_price(account, row) for row in rows], total


def _price(account: Account, row: PricedPackage) -> Priced:
    price = price_minor(
        row.cost_e4, account.currency, account.markup_percent_bp, account.markup_fixed_minor
    )
    return Priced(package=row.package, price_minor=price, cost_e4=row.cost_e4)
