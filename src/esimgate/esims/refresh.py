"""Pulling fresh state from the upstream: live status (every call) and refresh (at most one
upstream call per eSIM per minute, across processes; concurrent callers share one call)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from esimgate.errors import ProviderUnavailable, ServiceUnavailable
from esimgate.esims.errors import RefreshFailed
from esimgate.esims.models import Esim
from esimgate.esims.usage import apply_report
from esimgate.providers.base import EsimRef, LogicalError, ProviderError, TechnicalError
from esimgate.providers.models import ProviderAccount
from esimgate.runtime import Runtime

REFRESH_WINDOW = timedelta(seconds=60)


class UpstreamSilent(ProviderError):
    """The upstream answered without this eSIM in its report."""


async def pull(runtime: Runtime, esim_id: int) -> Esim:
    """Ask the upstream about one eSIM now and store the answer; returns the stored eSIM."""
    async with runtime.sessions() as session:
        esim = await session.get(Esim, esim_id)
        assert esim is not None
        account = await session.get(ProviderAccount, esim.provider_account_id)
        assert account is not None
    adapter = runtime.providers.adapter(account)
    ref = EsimRef(esim.iccid, esim.provider_esim_id)
    async with (
        runtime.providers.limiter(account),
        asyncio.timeout(runtime.settings.provider_timeout_seconds),
    ):
        reports = await adapter.query_usage([ref])
    report = next((r for r in reports if r.esim.iccid == esim.iccid), None)
    if report is None:
        raise UpstreamSilent("the provider does not report this eSIM", provider=account.kind)
    async with runtime.sessions() as session, session.begin():
        fresh = await session.get(Esim, esim_id, with_for_update=True)
        assert fresh is not None
        await apply_report(session, fresh, report, account.kind, runtime.clock.now())
        return fresh


async def live(runtime: Runtime, esim_id: int) -> Esim:
    """POST /esims/status: always live; an unreachable upstream is a 502."""
    try:
        return await pull(runtime, esim_id)
    except (ProviderError, TimeoutError) as exc:
        raise ProviderUnavailable(
            "Failed to fetch live status from the provider", detail=str(exc) or None
        ) from exc


@dataclass(frozen=True, slots=True)
class Refreshed:
    esim: Esim
    cached: bool
    stale: bool
    refreshed_at: datetime | None


class Refresher:
    """Per-process coalescing on top of the cross-process throttle."""

    def __init__(self) -> None:
        self._inflight: dict[int, asyncio.Future[Refreshed]] = {}

    async def refresh(self, runtime: Runtime, esim: Esim) -> Refreshed:
        running = self._inflight.get(esim.id)
        if running is not None:
            return await asyncio.shield(running)
        now = runtime.clock.now()
        if not await runtime.throttle.claim(f"refresh:{esim.id}", REFRESH_WINDOW, now):
            return Refreshed(esim, cached=True, stale=False, refreshed_at=esim.usage_updated_at)
        future: asyncio.Future[Refreshed] = asyncio.get_running_loop().create_future()
        self._inflight[esim.id] = future
        try:
            result = await self._call(runtime, esim)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: followers re-raise it themselves
            raise
        finally:
            del self._inflight[esim.id]

    async def _call(self, runtime: Runtime, esim: Esim) -> Refreshed:
        try:
            fresh = await pull(runtime, esim.id)
        except (ProviderError, TimeoutError) as exc:
            if esim.usage_updated_at is not None:
                return Refreshed(esim, cached=True, stale=True, refreshed_at=esim.usage_updated_at)
            if isinstance(exc, LogicalError | UpstreamSilent):
                raise RefreshFailed(detail=exc.message) from exc
            retry = exc.retry_after if isinstance(exc, TechnicalError) else None
            raise ServiceUnavailable(
                "Provider service temporarily unavailable",
                headers={"Retry-After": str(int(retry or REFRESH_WINDOW.total_seconds()))},
            ) from exc
        return Refreshed(fresh, cached=False, stale=False, refreshed_at=fresh.usage_updated_at)
