"""`esimgate …` commands. Forms are fixed: operators and scripts rely on them."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from esimgate.accounts.models import Account
from esimgate.accounts.pricing import parse_percent_bp
from esimgate.accounts.repository import AccountRepository
from esimgate.accounts.service import AccountNotFound, NewAccount, create_account, find_account
from esimgate.auth.keys import KeyNotFound, KeyRepository, issue_key, revoke_key
from esimgate.auth.signature import sign
from esimgate.cli.esims import esims_app
from esimgate.cli.providers import providers_app
from esimgate.cli.sim import SIM_ERRORS, sim_app
from esimgate.cli.webhooks import webhooks_app
from esimgate.clock import epoch_ms
from esimgate.config import get_settings
from esimgate.db.migrate import upgrade
from esimgate.money import MoneyError, minor_to_decimal, parse_minor
from esimgate.providers.service import sync_catalogue
from esimgate.runtime import Runtime, build_runtime
from esimgate.secretbox import MasterKeyError
from esimgate.wallet.service import WalletError, credit

app = typer.Typer(
    no_args_is_help=True,
    help="esimgate: an open-source eSIM reseller gateway.",
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
accounts_app = typer.Typer(no_args_is_help=True, help="Business accounts.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
wallet_app = typer.Typer(no_args_is_help=True, help="Prepaid wallets.")
catalog_app = typer.Typer(no_args_is_help=True, help="The package catalogue.")
orders_app = typer.Typer(no_args_is_help=True, help="Orders.")
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(wallet_app, name="wallet")
app.add_typer(catalog_app, name="catalog")
app.add_typer(orders_app, name="orders")
app.add_typer(sim_app, name="sim")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(providers_app, name="providers")
app.add_typer(esims_app, name="esims")

console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

USER_ERRORS = (
    AccountNotFound,
    KeyNotFound,
    MoneyError,
    WalletError,
    ValueError,
    MasterKeyError,
    *SIM_ERRORS,
    LookupError,
)


def run(work: Callable[[Runtime], Awaitable[T]], *, migrate: bool = True) -> T:
    """Run one command's async work against a runtime built from the environment."""

    async def main() -> T:
        runtime = build_runtime(get_settings())
        try:
            if migrate:
                await upgrade(runtime.engine)
            return await work(runtime)
        finally:
            await runtime.aclose()

    try:
        return asyncio.run(main())
    except USER_ERRORS as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(code=2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind")] = None,
    demo: Annotated[bool, typer.Option(help="Create a demo account and print how to call")] = False,
) -> None:
    """Run the API server (migrations, default provider and catalogue sync on start)."""
    from esimgate.app import create_app, prepare

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    if demo:

        async def demo_account(runtime: Runtime) -> None:
            await prepare(runtime)
            await _print_demo(runtime, host, port)

        run(demo_account, migrate=False)
        settings.simulator_autopilot = True  # demo: simulated eSIMs move on their own
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


async def _print_demo(runtime: Runtime, host: str, port: int) -> None:
    async with runtime.sessions() as session, session.begin():
        existing = (await session.execute(select(Account).where(Account.name == "demo"))).scalar()
        if existing is not None:
            console.print(
                "[bold]demo account exists[/bold] (its secret was shown when it was created; "
                "`esimgate keys create demo` issues a new key)"
            )
            return
        account = await create_account(session, runtime.clock, NewAccount(name="demo"))
        await credit(session, runtime.clock, account.id, 10_000, "demo credit")
        issued = await issue_key(session, runtime.clock, runtime.box, account.id)
    code, secret = issued.key.access_code, issued.secret_key
    timestamp = str(epoch_ms(runtime.clock.now()))
    request_id = str(uuid.uuid4())
    signature = sign(secret, timestamp, request_id, code, b"")
    console.print("[bold green]demo account created[/bold green] with a balance of 100.00 USD")
    console.print(f"  access code: {code}\n  secret key:  {secret}  (shown once)")
    console.print("A signed request (valid for 5 minutes, once):")
    console.print(
        f"curl -s http://{host}:{port}/api/v1/business/balance "
        f"-H 'RT-AccessCode: {code}' -H 'RT-RequestID: {request_id}' "
        f"-H 'RT-Timestamp: {timestamp}' -H 'RT-Signature: {signature}'",
        soft_wrap=True,
        highlight=False,
    )


@app.command()
def worker() -> None:
    """Run background jobs (for deployments where `serve` runs without its embedded worker)."""
    from taskiq.api import run_receiver_task

    from esimgate.worker.engine import Worker

    async def work(runtime: Runtime) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        engine = Worker(runtime)
        tasks = [asyncio.create_task(engine.run_forever(stop))]
        if runtime.settings.redis_url:
            tasks.append(asyncio.create_task(run_receiver_task(engine.broker)))
        console.print("[bold]worker running[/bold]; Ctrl-C stops it")
        await stop.wait()
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    run(work)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the newest."""

    async def work(runtime: Runtime) -> None:
        await upgrade(runtime.engine)

    run(work, migrate=False)
    console.print("database is up to date")


@accounts_app.command("create")
def accounts_create(
    name: str,
    balance: Annotated[str | None, typer.Option(help="Opening balance, e.g. 100.00")] = None,
    currency: Annotated[str, typer.Option(help="ISO 4217 currency")] = "USD",
    markup_percent: Annotated[
        str, typer.Option("--markup-percent", help="Percent added to cost, e.g. 12.5")
    ] = "0",
    markup_fixed: Annotated[
        str, typer.Option("--markup-fixed", help="Fixed amount added per package, e.g. 0.50")
    ] = "0",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Create a business account with its first API key."""
    currency = currency.upper()

    async def work(runtime: Runtime) -> dict[str, Any]:
        spec = NewAccount(
            name=name,
            currency=currency,
            markup_percent_bp=parse_percent_bp(markup_percent),
            markup_fixed_minor=parse_minor(markup_fixed, currency),
        )
        opening = parse_minor(balance, currency) if balance else 0
        async with runtime.sessions() as session, session.begin():
            account = await create_account(session, runtime.clock, spec)
            if opening:
                await credit(session, runtime.clock, account.id, opening, "opening balance")
            issued = await issue_key(session, runtime.clock, runtime.box, account.id)
        return {
            "account_id": account.id,
            "access_code": issued.key.access_code,
            "secret_key": issued.secret_key,
        }

    created = run(work)
    if as_json:
        typer.echo(json.dumps(created))
        return
    console.print(f"[bold green]account {created['account_id']} created[/bold green]")
    console.print(f"  access code: {created['access_code']}")
    console.print(f"  secret key:  {created['secret_key']}  (shown once; store it now)")


@accounts_app.command("list")
def accounts_list() -> None:
    """List accounts with balance, markup and key count."""

    async def work(runtime: Runtime) -> list[tuple[Account, int]]:
        async with runtime.sessions() as session:
            accounts = await AccountRepository(session).list()
            return [(a, len(await KeyRepository(session).for_account(a.id))) for a in accounts]

    table = Table("id", "name", "status", "balance", "markup %", "markup fixed", "keys")
    for account, keys in run(work):
        table.add_row(
            str(account.id),
            escape(account.name),
            account.status,
            f"{minor_to_decimal(account.balance_minor, account.currency)} {account.currency}",
            f"{account.markup_percent_bp / 100:g}",
            str(minor_to_decimal(account.markup_fixed_minor, account.currency)),
            str(keys),
        )
    console.print(table)


@keys_app.command("create")
def keys_create(account: str) -> None:
    """Issue another API key for ACCOUNT (id or name)."""

    async def work(runtime: Runtime) -> tuple[str, str]:
        async with runtime.sessions() as session, session.begin():
            owner = await find_account(session, account)
            issued = await issue_key(session, runtime.clock, runtime.box, owner.id)
        return issued.key.access_code, issued.secret_key

    code, secret = run(work)
    console.print(f"access code: {code}\nsecret key:  {secret}  (shown once)")


@keys_app.command("revoke")
def keys_revoke(access_code: str) -> None:
    """Revoke an API key at once."""

    async def work(runtime: Runtime) -> None:
        async with runtime.sessions() as session, session.begin():
            await revoke_key(session, runtime.clock, access_code)

    run(work)
    console.print(f"revoked {access_code}")


@wallet_app.command("credit")
def wallet_credit(
    account: str,
    amount: str,
    note: Annotated[str | None, typer.Option(help="Why, for the ledger")] = None,
) -> None:
    """Add AMOUNT (e.g. 25.00) to ACCOUNT's balance (id or name)."""

    async def work(runtime: Runtime) -> tuple[int, str]:
        async with runtime.sessions() as session, session.begin():
            owner = await find_account(session, account)
            entry = await credit(
                session, runtime.clock, owner.id, parse_minor(amount, owner.currency), note
            )
        return entry.balance_after, owner.currency

    balance, currency = run(work)
    console.print(f"new balance: {minor_to_decimal(balance, currency)} {currency}")


@catalog_app.command("sync")
def catalog_sync() -> None:
    """Copy every enabled provider's packages into the catalogue."""
    from esimgate.providers.service import ensure_default_provider

    async def work(runtime: Runtime) -> list[Any]:
        async with runtime.sessions() as session, session.begin():
            await ensure_default_provider(session, runtime.clock)
            return await sync_catalogue(session, runtime.clock, runtime.providers)

    table = Table("provider", "added", "updated", "delisted", "unchanged", "price changes")
    for report in run(work):
        table.add_row(
            report.provider,
            str(report.added),
            str(report.updated),
            str(report.delisted),
            str(report.unchanged),
            str(len(report.price_changes)),
        )
    console.print(table)


@orders_app.command("reconcile")
def orders_reconcile(
    older_than: Annotated[
        int | None,
        typer.Option(help="Only orders pending at least this many seconds (default: setting)"),
    ] = None,
) -> None:
    """Settle pending orders now by asking their providers by our reference."""
    from esimgate.orders.tasks import reconcile_pending

    async def work(runtime: Runtime) -> dict[str, int]:
        if older_than is not None:
            runtime.settings.reconcile_after_seconds = older_than
        return await reconcile_pending(runtime)

    counts = run(work)
    if not counts:
        console.print("no pending orders to reconcile")
        return
    table = Table("status after reconciliation", "orders")
    for status, count in sorted(counts.items()):
        table.add_row(status, str(count))
    console.print(table)
