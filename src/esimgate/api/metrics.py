"""GET /metrics: Prometheus text exposition of outcomes that live in the database."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select

from esimgate.api.deps import SessionDep
from esimgate.orders.models import Order
from esimgate.webhooks.models import Delivery

router = APIRouter(tags=["Operations"])


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(session: SessionDep) -> str:
    """Webhook delivery outcomes and order statuses, as counters."""
    lines = [
        "# HELP esimgate_webhook_deliveries Webhook deliveries by status.",
        "# TYPE esimgate_webhook_deliveries gauge",
    ]
    deliveries = await session.execute(
        select(Delivery.status, func.count(), func.coalesce(func.sum(Delivery.attempts), 0))
        .group_by(Delivery.status)
        .order_by(Delivery.status)
    )
    attempts = 0
    for status, count, tries in deliveries.all():
        lines.append(f'esimgate_webhook_deliveries{{status="{status}"}} {count}')
        attempts += int(tries)
    lines += [
        "# HELP esimgate_webhook_attempts_total Delivery attempts made.",
        "# TYPE esimgate_webhook_attempts_total counter",
        f"esimgate_webhook_attempts_total {attempts}",
        "# HELP esimgate_orders Orders by status.",
        "# TYPE esimgate_orders gauge",
    ]
    orders = await session.execute(
        select(Order.status, func.count()).group_by(Order.status).order_by(Order.status)
    )
    lines += [f'esimgate_orders{{status="{s}"}} {n}' for s, n in orders.all()]
    return "\n".join(lines) + "\n"
