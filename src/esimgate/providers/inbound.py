"""Inbound provider webhooks: verified by the provider's own scheme, deduplicated by its event
id, stored raw, and confirmed by asking the provider before any state changes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.db.base import Base, BigId
from esimgate.esims.models import Esim
from esimgate.orders.models import Order
from esimgate.providers.base import ProviderNotice
from esimgate.worker.jobs import enqueue, job

if TYPE_CHECKING:
    from esimgate.runtime import Runtime


class ProviderWebhook(Base):
    """One notification as received (raw body kept for audit)."""

    __tablename__ = "provider_webhooks"
    __table_args__ = (UniqueConstraint("provider_account_id", "event_id", name="event"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_account_id: Mapped[int] = mapped_column(ForeignKey("provider_accounts.id"))
    event_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(100))
    reference: Mapped[str | None] = mapped_column(String(200), default=None)
    provider_order_id: Mapped[str | None] = mapped_column(String(128), default=None)
    iccid: Mapped[str | None] = mapped_column(String(22), default=None)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(200), default=None)


async def store(
    session: AsyncSession, account_id: int, notice: ProviderNotice, body: bytes, now: datetime
) -> int | None:
    """Keep a new notification and schedule its confirmation; None for a duplicate."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    inserted = await session.execute(
        module.insert(ProviderWebhook)
        .values(
            provider_account_id=account_id,
            event_id=notice.event_id[:200],
            kind=notice.kind[:100],
            reference=notice.reference,
            provider_order_id=notice.provider_order_id,
            iccid=notice.iccid,
            body=body.decode("utf-8", errors="replace"),
            received_at=now,
        )
        .on_conflict_do_nothing()
        .returning(ProviderWebhook.id)
    )
    webhook_id = inserted.scalar_one_or_none()
    if webhook_id is not None:
        await enqueue(session, "providers.webhook", {"id": webhook_id}, now=now)
    return webhook_id


@job("providers.webhook")
async def confirm(runtime: Runtime, payload: dict[str, Any]) -> None:
    """Act on a notification only through what the provider says when asked."""
    from esimgate.esims.refresh import pull
    from esimgate.orders.tasks import resolve

    async with runtime.sessions() as session:
        row = await session.get(ProviderWebhook, int(payload["id"]))
        if row is None or row.processed_at is not None:
            return
        order_id = esim_id = None
        if row.reference:
            order_id = await session.scalar(
                select(Order.id).where(
                    Order.reference == row.reference,
                    Order.provider_account_id == row.provider_account_id,
                )
            )
        if order_id is None and row.provider_order_id:
            order_id = await session.scalar(
                select(Order.id)
                .where(
                    Order.provider_order_id == row.provider_order_id,
                    Order.provider_account_id == row.provider_account_id,
                )
                .order_by(Order.id)
                .limit(1)
            )
        if order_id is None and row.iccid:
            esim_id = await session.scalar(
                select(Esim.id)
                .where(
                    Esim.iccid == row.iccid,
                    Esim.provider_account_id == row.provider_account_id,
                )
                .order_by(Esim.id.desc())
            )
    if order_id is not None:
        outcome = f"order {await resolve(runtime, order_id)}"
    elif esim_id is not None:
        outcome = f"esim {(await pull(runtime, esim_id)).status}"
    else:
        outcome = "nothing of ours"
    async with runtime.sessions() as session, session.begin():
        fresh = await session.get(ProviderWebhook, row.id, with_for_update=True)
        assert fresh is not None
        fresh.processed_at = runtime.clock.now()
        fresh.outcome = outcome
