"""Recording events in the outbox, inside the transaction that makes the change; their webhook
deliveries are created in the same transaction, so a crash can lose neither."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.webhooks.models import OutboxEvent
from esimgate.webhooks.service import fan_out


async def record(
    session: AsyncSession,
    *,
    account_id: int,
    event: str,
    payload: dict[str, Any],
    now: datetime,
    order_id: int | None = None,
    esim_id: int | None = None,
) -> OutboxEvent:
    """Add an event to the current transaction."""
    row = OutboxEvent(
        account_id=account_id,
        event=event,
        order_id=order_id,
        esim_id=esim_id,
        payload=payload,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    await fan_out(session, row)
    return row
