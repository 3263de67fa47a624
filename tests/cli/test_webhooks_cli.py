"""`esimgate webhooks deliveries [--failed]` and `esimgate webhooks redeliver ID`."""

from __future__ import annotations

from sqlalchemy import select

from esimgate.accounts.service import NewAccount, create_account
from esimgate.auth.keys import issue_key
from esimgate.config import Settings
from esimgate.runtime import Runtime
from esimgate.webhooks.models import Delivery, WebhookEndpoint
from esimgate.worker.models import Job
from tests.cli.test_cli import esimgate, with_runtime


async def _seed(runtime: Runtime) -> list[int]:
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        account = await create_account(session, runtime.clock, NewAccount("hooked"))
        key = await issue_key(session, runtime.clock, runtime.box, account.id)
        endpoint = WebhookEndpoint(
            account_id=account.id,
            api_key_id=key.key.id,
            url="https://hooks.example/receive",
            events=["order.completed"],
            secret_encrypted=runtime.box.encrypt("whsec_dGVzdA=="),
            created_at=now,
            updated_at=now,
        )
        session.add(endpoint)
        await session.flush()
        ids = []
        for status, wid in (("failed", "msg_failed"), ("delivered", "msg_delivered")):
            row = Delivery(
                webhook_id=wid,
                account_id=account.id,
                endpoint_id=endpoint.id,
                event="order.completed",
                order_reference="order_1_x",
                url=endpoint.url or "",
                body="{}",
                status=status,
                attempts=5 if status == "failed" else 1,
                last_error="HTTP 500" if status == "failed" else None,
                created_at=now,
            )
            session.add(row)
            await session.flush()
            ids.append(row.id)
        return ids


async def _state(runtime: Runtime) -> tuple[list[tuple[str, str, int]], int]:
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Delivery).order_by(Delivery.id))).scalars().all()
        jobs = (
            (await session.execute(select(Job).where(Job.kind == "webhooks.deliver")))
            .scalars()
            .all()
        )
    return [(d.webhook_id, d.status, d.attempts) for d in rows], len(jobs)


def test_list_and_redeliver(cli_settings: Settings) -> None:
    failed_id, _ = with_runtime(cli_settings, _seed)
    everything = esimgate("webhooks", "deliveries")
    assert everything.exit_code == 0, everything.output
    assert "msg_failed" in everything.output and "msg_delivered" in everything.output
    only_failed = esimgate("webhooks", "deliveries", "--failed")
    assert "msg_failed" in only_failed.output and "msg_delivered" not in only_failed.output
    again = esimgate("webhooks", "redeliver", str(failed_id))
    assert again.exit_code == 0, again.output
    rows, jobs = with_runtime(cli_settings, _state)
    assert rows[0] == ("msg_failed", "pending", 0) and jobs == 1
    missing = esimgate("webhooks", "redeliver", "999999")
    assert missing.exit_code != 0 and "no delivery" in missing.output
