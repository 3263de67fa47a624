"""Applying what an upstream reports about an eSIM: normalised status, usage, daily history,
and the eSIM events, each emitted exactly once."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.esims.models import Esim, EsimNotice, EsimStatus, UsageDay
from esimgate.esims.status import ProfileStatus, normalise
from esimgate.providers.base import UsageReport
from esimgate.webhooks.outbox import record

THRESHOLDS = (50, 80, 90, 100)
EXPIRING = ((timedelta(days=3), "3d"), (timedelta(days=1), "1d"))
INSTALLED = {ProfileStatus.INSTALLED, ProfileStatus.ENABLED, ProfileStatus.DISABLED}
WATCH_CLOSELY = timedelta(minutes=5)  # ≥ 80 % used, or expiring within a day
ACTIVE_EVERY = timedelta(minutes=30)
NEW_EVERY = timedelta(hours=2)  # waiting to be installed and attached
FINAL = {EsimStatus.EXPIRED, EsimStatus.CANCELLED, EsimStatus.DELETED, EsimStatus.DEPLETED}


def next_sync(esim: Esim, now: datetime) -> datetime | None:
    """When to ask about this eSIM again (None: its state is final; a top-up re-arms it)."""
    if esim.status in FINAL:
        return None
    if esim.status == EsimStatus.NEW:
        return now + NEW_EVERY
    close_to_threshold = bool(esim.total_bytes) and esim.used_bytes * 100 >= 80 * (
        esim.total_bytes or 1
    )
    close_to_expiry = esim.expires_at is not None and esim.expires_at - now <= timedelta(days=1)
    return now + (WATCH_CLOSELY if close_to_threshold or close_to_expiry else ACTIVE_EVERY)


async def apply_report(
    session: AsyncSession, esim: Esim, report: UsageReport, provider_kind: str, now: datetime
) -> list[str]:
    """Store one report on the eSIM (in the caller's transaction); returns the events emitted."""
    normalised = normalise(
        provider_kind,
        report.raw_status,
        used_bytes=report.used_bytes,
        total_bytes=report.total_bytes,
        expires_at=report.expires_at,
        now=now,
    )
    esim.used_bytes = max(0, report.used_bytes)
    if report.total_bytes is not None or esim.total_bytes is None:
        esim.total_bytes = report.total_bytes
    esim.line_status = normalised.line.value
    esim.profile_status = normalised.profile.value
    esim.plan_status = normalised.plan.value
    esim.raw_status = dict(report.raw_status)
    if esim.status != EsimStatus.CANCELLED:  # our own cancellation stands
        esim.status = normalised.api_status
    esim.activated_at = report.activated_at or esim.activated_at
    esim.expires_at = report.expires_at or esim.expires_at
    esim.last_usage_at = report.last_usage_at or esim.last_usage_at
    if report.last_network is not None:
        esim.last_network = asdict(report.last_network)
    esim.device_model = report.device_model or esim.device_model
    esim.device_imei = report.device_imei or esim.device_imei
    if normalised.profile in INSTALLED or esim.activated_at is not None:
        esim.ever_installed = True
    esim.usage_updated_at = now
    esim.next_sync_at = next_sync(esim, now)
    await _record_day(session, esim, now)
    return await _emit(session, esim, now)


async def _record_day(session: AsyncSession, esim: Esim, now: datetime) -> None:
    values = {
        "esim_id": esim.id,
        "day": now.date(),
        "used_bytes": esim.used_bytes,
        "observed_at": now,
    }
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(UsageDay).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["esim_id", "day"],
            set_={"used_bytes": esim.used_bytes, "observed_at": now},
        )
    )


def _due_notices(esim: Esim, now: datetime) -> list[tuple[str, str, dict[str, Any]]]:
    """(notice key, event, extra payload) for everything this eSIM's state calls for."""
    due: list[tuple[str, str, dict[str, Any]]] = []
    if esim.status == EsimStatus.CANCELLED:
        return due
    if esim.activated_at is not None or esim.status == EsimStatus.ACTIVE:
        due.append(("activated", "esim.activated", {}))
    if esim.total_bytes:
        percent = min(100, esim.used_bytes * 100 // esim.total_bytes)
        for threshold in THRESHOLDS:
            if percent >= threshold:
                due.append(
                    (
                        f"usage_threshold:{threshold}",
                        "esim.usage_threshold",
                        {"threshold": threshold},
                    )
                )
    if esim.status == EsimStatus.DEPLETED:
        due.append(("depleted", "esim.depleted", {}))
    if esim.status == EsimStatus.EXPIRED:
        due.append(("expired", "esim.expired", {}))
    elif esim.expires_at is not None and esim.expires_at > now:
        for window, label in EXPIRING:
            if esim.expires_at - now <= window:
                due.append((f"expiring:{label}", "esim.expiring", {"remaining": label}))
    return due


async def _emit(session: AsyncSession, esim: Esim, now: datetime) -> list[str]:
    emitted: list[str] = []
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    for key, event, extra in _due_notices(esim, now):
        inserted = await session.execute(
            module.insert(EsimNotice)
            .values(esim_id=esim.id, key=key, created_at=now)
            .on_conflict_do_nothing()
        )
        if inserted.rowcount != 1:  # type: ignore[attr-defined]
            continue  # already emitted once
        await record(
            session,
            account_id=esim.account_id,
            event=event,
            order_id=esim.order_id,
            esim_id=esim.id,
            payload={
                "iccid": esim.iccid,
                "status": esim.status,
                "used_bytes": esim.used_bytes,
                "total_bytes": esim.total_bytes,
                **extra,
            },
            now=now,
        )
        emitted.append(f"{event}:{key}" if event == "esim.usage_threshold" else event)
    return emitted


async def history(session: AsyncSession, esim: Esim, first: Any, last: Any) -> list[dict[str, Any]]:
    """Daily buckets ``first``..``last`` (dates): MB used that day and cumulative MB."""
    from esimgate.esims.schemas import megabytes

    rows = (
        await session.execute(
            select(UsageDay.day, UsageDay.used_bytes)
            .where(UsageDay.esim_id == esim.id, UsageDay.day <= last)
            .order_by(UsageDay.day)
        )
    ).all()
    cumulative_before = 0
    by_day: dict[Any, int] = {}
    for day, used in rows:
        if day < first:
            cumulative_before = used
        else:
            by_day[day] = used
    out = []
    day = first
    previous = cumulative_before
    while day <= last:
        cumulative = by_day.get(day, previous)
        out.append(
            {
                "date": day.isoformat(),
                "data_used_mb": megabytes(max(0, cumulative - previous)),
                "cumulative_mb": megabytes(cumulative),
            }
        )
        previous = cumulative
        day += timedelta(days=1)
    return out
