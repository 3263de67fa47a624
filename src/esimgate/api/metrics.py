"""GET /metrics: Prometheus text exposition of outcomes that live in the database."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select

from esimgate.api.deps import RuntimeDep, SessionDep
from esimgate.orders.models import Order
from esimgate.providers.models import ProviderAccount
from esimgate.webhooks.models import Delivery

router = APIRouter(tags=["Operations"])


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(session: SessionDep, runtime: RuntimeDep) -> str:
    """Webhook delivery outcomes, orders by provider and status, and open circuits."""
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
        select(ProviderAccount.name, Order.status, func.count())
        .join(ProviderAccount, ProviderAccount.id == Order.provider_account_id)
        .group_by(ProviderAccount.name, Order.status)
        .order_by(ProviderAccount.name, Order.status)
    )
    lines += [f'esimgate_orders{{provider="{p}",status="{s}"}} {n}' for p, s, n in orders.all()]
    lines += [
        "# HELP esimgate_provider_circuit_open 1 while this process refuses orders to a provider.",
        "# TYPE esimgate_provider_circuit_open gauge",
    ]
    now = runtime.clock.now()
    for account in (await session.execute(select(ProviderAccount))).scalars():
        state = runtime.providers.breaker(account.id).state(now)
        lines.append(
            f'esimgate_provider_circuit_open{{provider="{account.name}"}} {int(state == "open")}'
        )
    return "\n".join(lines) + "\n"
