"""`esimgate webhooks …`: see and resend deliveries."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from esimgate.clock import iso_z
from esimgate.runtime import Runtime
from esimgate.webhooks.models import Delivery, DeliveryStatus
from esimgate.webhooks.service import redeliver

webhooks_app = typer.Typer(no_args_is_help=True, help="Webhook deliveries.")
console = Console()


@webhooks_app.command("deliveries")
def deliveries(
    failed: Annotated[bool, typer.Option("--failed", help="Only deliveries that gave up")] = False,
    limit: Annotated[int, typer.Option(help="How many, newest first", min=1, max=1000)] = 50,
) -> None:
    """List recent webhook deliveries."""
    from esimgate.cli.main import run

    async def work(runtime: Runtime) -> list[Delivery]:
        query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
        if failed:
            query = query.where(Delivery.status == DeliveryStatus.FAILED)
        async with runtime.sessions() as session:
            return list((await session.execute(query)).scalars())

    table = Table("id")
    for name in ("webhook id", "event", "order", "status"):
        table.add_column(name, no_wrap=True)  # ids are copied from here: keep them whole
    for name in ("attempts", "last", "error"):
        table.add_column(name)
    for d in run(work):
        table.add_row(
            str(d.id),
            d.webhook_id,
            d.event,
            d.order_reference or "",
            d.status,
            str(d.attempts),
            iso_z(d.last_attempt_at) or "",
            escape(d.last_error or (str(d.last_status_code) if d.last_status_code else "")),
        )
    console.print(table)


@webhooks_app.command("redeliver")
def redeliver_command(delivery_id: int) -> None:
    """Send delivery ID again (same webhook id, a fresh retry schedule)."""
    from esimgate.cli.main import run

    async def work(runtime: Runtime) -> Delivery:
        async with runtime.sessions() as session, session.begin():
            return await redeliver(session, runtime, delivery_id)

    delivery = run(work)
    console.print(f"delivery {delivery.id} ({delivery.webhook_id}) queued for redelivery")
