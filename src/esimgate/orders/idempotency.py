"""Idempotency keys: one purchase per (account, key), the first response replayed after."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.orders.models import IdempotencyKey, IdempotencyState


class Claim(enum.Enum):
    CLAIMED = "claimed"  # go ahead: this request owns the key
    REPLAY = "replay"  # done before: replay the stored response
    IN_PROGRESS = "in_progress"
    MISMATCH = "mismatch"  # same key, different body


@dataclass(frozen=True, slots=True)
class ClaimResult:
    claim: Claim
    response: dict[str, Any] | None = None
    order_id: int | None = None


async def claim(
    session: AsyncSession, account_id: int, key: str, fingerprint: str, now: datetime
) -> ClaimResult:
    """Take the key for this request, in the caller's (short, committed) transaction."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    inserted = await session.execute(
        module.insert(IdempotencyKey)
        .values(
            account_id=account_id,
            key=key,
            fingerprint=fingerprint,
            state=IdempotencyState.IN_PROGRESS,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    if inserted.rowcount == 1:  # type: ignore[attr-defined]
        return ClaimResult(Claim.CLAIMED)
    row = (
        await session.execute(
            select(IdempotencyKey)
            .where(IdempotencyKey.account_id == account_id, IdempotencyKey.key == key)
            .with_for_update()
        )
    ).scalar_one()
    if row.state == IdempotencyState.FAILED:
        # A definite failure charged nothing: the key may buy again (with any body).
        row.state, row.fingerprint, row.order_id, row.response = (
            IdempotencyState.IN_PROGRESS,
            fingerprint,
            None,
            None,
        )
        row.updated_at = now
        return ClaimResult(Claim.CLAIMED)
    if row.fingerprint != fingerprint:
        return ClaimResult(Claim.MISMATCH)
    if row.state == IdempotencyState.DONE:
        return ClaimResult(Claim.REPLAY, response=row.response, order_id=row.order_id)
    return ClaimResult(Claim.IN_PROGRESS, order_id=row.order_id)


async def attach_order(session: AsyncSession, account_id: int, key: str, order_id: int) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.account_id == account_id, IdempotencyKey.key == key)
        .values(order_id=order_id)
    )


async def has_key(session: AsyncSession, order_id: int) -> bool:
    found = await session.scalar(
        select(IdempotencyKey.key).where(IdempotencyKey.order_id == order_id).limit(1)
    )
    return found is not None


async def finish_for_order(
    session: AsyncSession, order_id: int, response: dict[str, Any] | None, now: datetime
) -> None:
    """Settle the key behind an order: DONE with its response, or FAILED (reusable)."""
    state = IdempotencyState.DONE if response is not None else IdempotencyState.FAILED
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.order_id == order_id)
        .values(state=state, response=response, updated_at=now)
    )


async def fail(session: AsyncSession, account_id: int, key: str, now: datetime) -> None:
    """The request failed before an order existed: free the key."""
    await session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.account_id == account_id,
            IdempotencyKey.key == key,
            IdempotencyKey.state == IdempotencyState.IN_PROGRESS,
        )
        .values(state=IdempotencyState.FAILED, updated_at=now)
    )
