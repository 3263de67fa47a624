"""Webhook settings per API key, fan-out of outbox events into deliveries, and one attempt of a
delivery with its retry schedule. Delivery state lives in rows; the job engine only schedules."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate import __version__
from esimgate.clock import iso_z
from esimgate.errors import InvalidParameter
from esimgate.orders.models import Order
from esimgate.webhooks.models import Delivery, DeliveryStatus, OutboxEvent, WebhookEndpoint
from esimgate.webhooks.sender import Attempt, send
from esimgate.webhooks.signing import new_secret, webhook_headers
from esimgate.webhooks.ssrf import UnsafeWebhookUrl, resolve_target
from esimgate.worker.jobs import enqueue

if TYPE_CHECKING:
    from esimgate.runtime import Runtime
    from esimgate.secretbox import SecretBox

EVENTS = (
    "order.completed",
    "order.failed",
    "esim.provisioned",
    "esim.activated",
    "esim.depleted",
    "esim.expired",
    "esim.usage_threshold",
    "esim.expiring",
    "balance.low",
    "topup.completed",
)
# What a per-order callbackUrl receives when its API key subscribed to nothing.
ORDER_EVENTS = ("order.completed", "order.failed", "esim.provisioned", "topup.completed")
# After attempt n (1-based) fails, the next comes this much later; after the last: failed.
RETRY_AFTER = (
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
)
MAX_ATTEMPTS = len(RETRY_AFTER) + 1


class WebhookUrlRefused(InvalidParameter):
    code = "INVALID_WEBHOOK_URL"
    default_message = "The webhook URL is not allowed"


async def check_url(runtime: Runtime, url: str) -> None:
    """Registration-time SSRF check (delivery checks again, on the address it connects to)."""
    try:
        await resolve_target(url, allow_loopback=runtime.settings.webhook_allow_loopback)
    except UnsafeWebhookUrl as exc:
        raise WebhookUrlRefused(detail=str(exc)) from None


def parse_events(value: Any) -> list[str]:
    if value is None:
        return list(EVENTS)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter("Invalid parameter: events", detail="events must be a list")
    unknown = sorted(set(value) - set(EVENTS))
    if unknown:
        raise InvalidParameter(
            "Invalid parameter: events", detail=f"unknown events: {', '.join(unknown)}"
        )
    return sorted(set(value), key=EVENTS.index)


async def endpoint_for(session: AsyncSession, api_key_id: int) -> WebhookEndpoint | None:
    result = await session.execute(
        select(WebhookEndpoint).where(WebhookEndpoint.api_key_id == api_key_id)
    )
    return result.scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Configured:
    endpoint: WebhookEndpoint
    secret: str | None  # only when created or rotated now


async def configure(
    session: AsyncSession,
    runtime: Runtime,
    account_id: int,
    api_key_id: int,
    url: str,
    events: list[str],
    *,
    rotate: bool = False,
) -> Configured:
    """PUT /webhooks: set the key's URL and events; a secret is made the first time."""
    await check_url(runtime, url)
    now = runtime.clock.now()
    endpoint = await endpoint_for(session, api_key_id)
    secret: str | None = None
    if endpoint is None:
        secret = new_secret()
        endpoint = WebhookEndpoint(
            account_id=account_id,
            api_key_id=api_key_id,
            url=url,
            events=events,
            secret_encrypted=runtime.box.encrypt(secret),
            created_at=now,
            updated_at=now,
        )
        session.add(endpoint)
    else:
        endpoint.url, endpoint.events, endpoint.updated_at = url, events, now
        if rotate:
            secret = new_secret()
            endpoint.secret_encrypted = runtime.box.encrypt(secret)
    await session.flush()
    return Configured(endpoint, secret)


async def rotate_secret(
    session: AsyncSession, runtime: Runtime, account_id: int, api_key_id: int
) -> str:
    """A new secret for the key (made if it had none); the old one stops signing at once."""
    endpoint = await endpoint_for(session, api_key_id)
    secret = new_secret()
    now = runtime.clock.now()
    if endpoint is None:
        endpoint = WebhookEndpoint(
            account_id=account_id,
            api_key_id=api_key_id,
            url=None,
            events=[],
            secret_encrypted=runtime.box.encrypt(secret),
            created_at=now,
            updated_at=now,
        )
        session.add(endpoint)
    else:
        endpoint.secret_encrypted = runtime.box.encrypt(secret)
        endpoint.updated_at = now
    await session.flush()
    return secret


def body_of(event: str, payload: dict[str, Any], when: datetime) -> str:
    return json.dumps(
        {"event": event, "timestamp": iso_z(when), "data": payload}, separators=(",", ":")
    )


async def ensure_secret(
    session: AsyncSession, box: SecretBox, account_id: int, api_key_id: int, now: datetime
) -> None:
    """Give a key that never set up webhooks a secret, so its order callbacks can be signed
    (the client learns it with POST /webhooks/rotate-secret)."""
    if await endpoint_for(session, api_key_id) is None:
        session.add(
            WebhookEndpoint(
                account_id=account_id,
                api_key_id=api_key_id,
                url=None,
                events=[],
                secret_encrypted=box.encrypt(new_secret()),
                created_at=now,
                updated_at=now,
            )
        )
        await session.flush()


async def fan_out(session: AsyncSession, row: OutboxEvent) -> list[int]:
    """Deliveries for one outbox event, in its transaction: to each subscribed endpoint, or to
    the order's callbackUrl instead when it has one. Returns the job ids to kick."""
    targets: list[tuple[WebhookEndpoint, str]] = []
    order = await session.get(Order, row.order_id) if row.order_id else None
    if order is not None and order.callback_url:
        endpoint = await endpoint_for(session, order.api_key_id) if order.api_key_id else None
        wanted = (endpoint.events or ORDER_EVENTS) if endpoint else ()
        if endpoint is not None and row.event in wanted:
            targets.append((endpoint, order.callback_url))
    else:
        endpoints = await session.execute(
            select(WebhookEndpoint).where(WebhookEndpoint.account_id == row.account_id)
        )
        targets = [(e, e.url) for e in endpoints.scalars() if e.url and row.event in e.events]
    job_ids: list[int] = []
    for endpoint, url in targets:
        delivery = Delivery(
            webhook_id="msg_" + secrets.token_hex(16),
            account_id=row.account_id,
            endpoint_id=endpoint.id,
            outbox_event_id=row.id,
            event=row.event,
            order_reference=order.reference if order else None,
            url=url,
            body=body_of(row.event, row.payload, row.created_at),
            status=DeliveryStatus.PENDING,
            next_attempt_at=row.created_at,
            created_at=row.created_at,
        )
        session.add(delivery)
        await session.flush()
        job = await _schedule(session, delivery, row.created_at)
        if job is not None:
            job_ids.append(job)
    return job_ids


async def _schedule(session: AsyncSession, delivery: Delivery, now: datetime) -> int | None:
    job = await enqueue(
        session,
        "webhooks.deliver",
        {"delivery_id": delivery.id},
        now=now,
        run_at=delivery.next_attempt_at or now,
        dedupe_key=f"webhooks.deliver:{delivery.id}:{delivery.attempts}",
    )
    return job.id if job else None


async def attempt(runtime: Runtime, delivery_id: int) -> Attempt | None:
    """One attempt of a pending delivery, then its next state (retry schedule or failed)."""
    async with runtime.sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return None
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        assert endpoint is not None
        secret = runtime.box.decrypt(endpoint.secret_encrypted)
    result = await send_once(runtime, delivery, secret)
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        row = await session.get(Delivery, delivery_id, with_for_update=True)
        if row is None or row.status != DeliveryStatus.PENDING:
            return result
        row.attempts += 1
        row.last_attempt_at = now
        row.last_status_code = result.status_code
        row.last_error = result.error[:500] if result.error else None
        if result.ok:
            row.status = DeliveryStatus.DELIVERED
            row.delivered_at = now
            row.next_attempt_at = None
        elif row.attempts >= MAX_ATTEMPTS:
            row.status = DeliveryStatus.FAILED
            row.next_attempt_at = None
        else:
            row.next_attempt_at = now + RETRY_AFTER[row.attempts - 1]
            await _schedule(session, row, now)
    return result


async def send_once(runtime: Runtime, delivery: Delivery, secret: str) -> Attempt:
    """Check the URL again (DNS may have changed) and POST the stored body to that address."""
    try:
        target = await resolve_target(
            delivery.url, allow_loopback=runtime.settings.webhook_allow_loopback
        )
    except UnsafeWebhookUrl as exc:
        return Attempt(status_code=None, error=f"refused: {exc}", duration_ms=0)
    body = delivery.body.encode()
    headers = webhook_headers(
        secret,
        delivery.webhook_id,
        delivery.event,
        int(runtime.clock.now().timestamp()),
        body,
        __version__,
    )
    return await send(target, body, headers, timeout=runtime.settings.webhook_timeout_seconds)


async def redeliver(session: AsyncSession, runtime: Runtime, delivery_id: int) -> Delivery:
    """Send a delivery again (same webhook id), with a fresh retry schedule."""
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise LookupError(f"no delivery {delivery_id}")
    now = runtime.clock.now()
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    # A distinct dedupe key: an earlier schedule for attempt 0 may still be on record.
    await enqueue(
        session,
        "webhooks.deliver",
        {"delivery_id": delivery.id},
        now=now,
        dedupe_key=f"webhooks.redeliver:{delivery.id}:{secrets.token_hex(4)}",
    )
    return delivery


async def recent(session: AsyncSession, account_id: int, limit: int = 10) -> Sequence[Delivery]:
    result = await session.execute(
        select(Delivery)
        .where(Delivery.account_id == account_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    return result.scalars().all()


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.webhook_id,
        "event": delivery.event,
        "order_reference": delivery.order_reference,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_attempt": iso_z(delivery.last_attempt_at),
        "delivered_at": iso_z(delivery.delivered_at),
        "last_status_code": delivery.last_status_code,
    }
