"""`esimgate providers …`: upstream provider accounts (credentials encrypted at rest)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from esimgate.providers.base import BalanceReader
from esimgate.providers.models import ProviderAccount
from esimgate.providers.registry import FACTORIES
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.runtime import Runtime

providers_app = typer.Typer(no_args_is_help=True, help="Upstream provider accounts.")
console = Console()


class ProviderAccountError(LookupError):
    """No such provider account, or one that cannot be created as asked."""


def _credentials(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ProviderAccountError(f"--credential takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


async def _named(runtime: Runtime, name: str) -> ProviderAccount:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name(name)
    if account is None:
        raise ProviderAccountError(f"no provider account {name!r}")
    return account


@providers_app.command("add")
def add(
    name: str,
    kind: Annotated[str, typer.Option("--type", help="|".join(FACTORIES))],
    base_url: Annotated[str | None, typer.Option("--base-url", help="Upstream base URL")] = None,
    credential: Annotated[
        list[str] | None, typer.Option("--credential", help="KEY=VALUE, repeatable")
    ] = None,
) -> None:
    """Configure an account at an upstream (several of one type are allowed)."""
    from esimgate.cli.main import run

    if kind not in FACTORIES:
        raise typer.BadParameter(f"--type must be one of {', '.join(FACTORIES)}")
    if base_url is not None and not base_url.startswith(("https://", "http://")):
        raise typer.BadParameter("--base-url must be an http(s) URL")
    try:
        secrets = _credentials(credential or [])
    except ProviderAccountError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def work(runtime: Runtime) -> ProviderAccount:
        async with runtime.sessions() as session, session.begin():
            repo = ProviderAccountRepository(session)
            if await repo.by_name(name) is not None:
                raise ProviderAccountError(f"a provider account {name!r} exists already")
            return await repo.add(
                ProviderAccount(
                    name=name,
                    kind=kind,
                    base_url=base_url,
                    credentials_encrypted=runtime.box.encrypt(json.dumps(secrets))
                    if secrets
                    else None,
                    enabled=True,
                    created_at=runtime.clock.now(),
                )
            )

    account = run(work)
    console.print(f"provider account {escape(account.name)} ({account.kind}) added")


@providers_app.command("list")
def list_accounts() -> None:
    """Provider accounts (credentials are never shown)."""
    from esimgate.cli.main import run

    async def work(runtime: Runtime) -> list[ProviderAccount]:
        async with runtime.sessions() as session:
            return list(await ProviderAccountRepository(session).all())

    table = Table("name", "type", "base url", "enabled", "credentials")
    for account in run(work):
        table.add_row(
            escape(account.name),
            account.kind,
            escape(account.base_url or "(default)"),
            "yes" if account.enabled else "no",
            "stored (encrypted)" if account.credentials_encrypted else "none",
        )
    console.print(table)


@providers_app.command("test")
def test(name: str) -> None:
    """Make a cheap authenticated call to the upstream."""
    from esimgate.cli.main import run

    async def work(runtime: Runtime) -> str:
        adapter = runtime.providers.adapter(await _named(runtime, name))
        if isinstance(adapter, BalanceReader):  # the cheapest authenticated call there is
            balance = await adapter.balance()
            return f"balance {_amount(balance.amount_e4)} {balance.currency}"
        check = getattr(adapter, "check", None)
        if check is not None:
            result: str = await check()
            return result
        return f"{len(await adapter.list_packages())} packages listed"

    console.print(f"{escape(name)}: ok, {escape(run(work))}")


def _amount(amount_e4: int) -> str:
    """1/10000 units as a decimal: two places unless more are needed to be exact."""
    value = Decimal(amount_e4).scaleb(-4)
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else f"{value:f}"


def _set_enabled(name: str, enabled: bool) -> None:
    from esimgate.cli.main import run
    from esimgate.providers.service import sync_catalogue

    async def work(runtime: Runtime) -> None:
        async with runtime.sessions() as session, session.begin():
            account = await ProviderAccountRepository(session).by_name(name)
            if account is None:
                raise ProviderAccountError(f"no provider account {name!r}")
            account.enabled = enabled
            await session.flush()
            # Its offers leave (or rejoin) the catalogue now; its eSIMs keep working.
            await sync_catalogue(session, runtime.clock, runtime.providers)

    run(work)
    console.print(f"provider account {escape(name)} {'enabled' if enabled else 'disabled'}")


@providers_app.command("disable")
def disable(name: str) -> None:
    """Stop selling this account's packages (its existing eSIMs keep working)."""
    _set_enabled(name, False)


@providers_app.command("enable")
def enable(name: str) -> None:
    """Sell this account's packages again."""
    _set_enabled(name, True)
