"""Provider accounts: the built-in simulator by default, and catalogue sync from all of them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.catalog.service import SyncReport, refresh_package_activity, sync_provider
from esimgate.clock import Clock
from esimgate.providers.models import ProviderAccount
from esimgate.providers.registry import ProviderRegistry
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.providers.resilience import retry_read

SIMULATOR = "simulator"


async def ensure_default_provider(session: AsyncSession, clock: Clock) -> ProviderAccount | None:
    """On a fresh install, configure the built-in simulator so everything works offline."""
    repo = ProviderAccountRepository(session)
    if await repo.all():
        return None
    return await repo.add(
        ProviderAccount(name=SIMULATOR, kind=SIMULATOR, enabled=True, created_at=clock.now())
    )


async def sync_catalogue(
    session: AsyncSession, clock: Clock, registry: ProviderRegistry
) -> list[SyncReport]:
    """Pull every enabled provider's catalogue into ours."""
    reports = []
    for account in await ProviderAccountRepository(session).all(enabled_only=True):
        packages = await retry_read(registry.adapter(account).list_packages)
        reports.append(await sync_provider(session, clock, account, packages))
    await refresh_package_activity(session, clock)
    return reports
