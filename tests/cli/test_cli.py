"""The real `esimgate` command line, driven through Typer's CliRunner against the test database.

The CLI calls ``asyncio.run`` itself, so these are plain synchronous tests; database checks run
in their own ``asyncio.run``. Settings come from the environment (``get_settings`` is cached, so
the cache is cleared around every invocation).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from esimgate.accounts.models import Account
from esimgate.app import create_app
from esimgate.auth.keys import KeyRepository
from esimgate.auth.models import ApiKey, ApiKeyStatus
from esimgate.cli.main import app
from esimgate.config import Settings, get_settings
from esimgate.providers.service import SIMULATOR
from esimgate.runtime import Runtime, build_runtime
from esimgate.wallet.audit import ledger_violations
from esimgate.wallet.models import LedgerEntry
from tests.support import Credentials, hmac_headers

T = TypeVar("T")
runner = CliRunner()


def with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    async def main() -> T:
        runtime = build_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.aclose()

    return asyncio.run(main())


async def _ledger_problems(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return await ledger_violations(session)


def esimgate(*args: str) -> Result:
    get_settings.cache_clear()
    try:
        return runner.invoke(app, list(args))
    finally:
        get_settings.cache_clear()


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    assert result.exception is None, result.exception
    return result


def refused(result: Result, message: str) -> None:
    """A clean user error: non-zero exit, the message on stderr, no traceback anywhere."""
    assert result.exit_code != 0, (result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr, result.output
    assert "new balance" not in result.stdout, result.stdout


def create_shop() -> dict[str, Any]:
    result = ok(
        esimgate(
            "accounts", "create", "shop", "--balance", "25.50", "--markup-percent", "12.5", "--json"
        )
    )
    created: dict[str, Any] = json.loads(result.stdout)
    return created


def balance_of(settings: Settings, name: str) -> int:
    async def work(runtime: Runtime) -> int:
        async with runtime.sessions() as session:
            account = await session.scalar(select(Account).where(Account.name == name))
        assert account is not None, name
        return account.balance_minor

    return with_runtime(settings, work)


def key_row(settings: Settings, access_code: str) -> tuple[ApiKey, str]:
    """The stored key and its decrypted secret."""

    async def work(runtime: Runtime) -> tuple[ApiKey, str]:
        async with runtime.sessions() as session:
            key = await KeyRepository(session).by_access_code(access_code)
        assert key is not None, access_code
        return key, runtime.box.decrypt(key.secret_encrypted)

    return with_runtime(settings, work)


def signed_balance(settings: Settings, creds: Credentials) -> httpx.Response:
    """GET /balance signed with the key, through the real app on the test database."""

    async def work(runtime: Runtime) -> httpx.Response:
        application = create_app(runtime=runtime, migrate=False, embedded_worker=False)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://esimgate.test") as http:
            return await http.get("/api/v1/business/balance", headers=hmac_headers(creds))

    return with_runtime(settings, work)


# --- accounts -----------------------------------------------------------------------------------


def test_accounts_create_json_prints_one_object_whose_key_works(cli_settings: Settings) -> None:
    result = ok(
        esimgate(
            "accounts", "create", "shop", "--balance", "25.50", "--markup-percent", "12.5", "--json"
        )
    )
    assert result.stdout.count("\n") == 1, result.stdout
    created = json.loads(result.stdout)
    assert set(created) == {"account_id", "access_code", "secret_key"}, created
    assert type(created["account_id"]) is int
    assert re.fullmatch(r"esg_[0-9a-f]{24}", created["access_code"]), created
    assert created["secret_key"].startswith("sk_") and len(created["secret_key"]) > 40

    async def account(runtime: Runtime) -> tuple[Account, list[LedgerEntry]]:
        async with runtime.sessions() as session:
            row = await session.get(Account, created["account_id"])
            entries = (await session.scalars(select(LedgerEntry))).all()
        assert row is not None
        return row, list(entries)

    row, entries = with_runtime(cli_settings, account)
    assert (row.name, row.currency, row.status) == ("shop", "USD", "active")
    assert (row.markup_percent_bp, row.markup_fixed_minor, row.balance_minor) == (1_250, 0, 2_550)
    assert [(e.account_id, e.amount_minor, e.note) for e in entries] == [
        (row.id, 2_550, "opening balance")
    ]

    key, secret = key_row(cli_settings, created["access_code"])
    assert (key.account_id, key.status, secret) == (row.id, "active", created["secret_key"])

    creds = Credentials(row.id, created["access_code"], created["secret_key"])
    response = signed_balance(cli_settings, creds)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "data": {"balance": 25.5, "currency": "USD"}}


def test_accounts_create_without_json_shows_the_key_once(cli_settings: Settings) -> None:
    result = ok(esimgate("accounts", "create", "plain"))
    code = re.search(r"access code: (esg_[0-9a-f]{24})", result.stdout)
    secret = re.search(r"secret key:\s+(sk_\S+)", result.stdout)
    assert code and secret, result.stdout
    _, stored_secret = key_row(cli_settings, code.group(1))
    assert stored_secret == secret.group(1)
    assert balance_of(cli_settings, "plain") == 0


def test_accounts_list_shows_balance_and_markup(cli_settings: Settings) -> None:
    created = create_shop()
    result = ok(esimgate("accounts", "list"))
    (line,) = [row for row in result.stdout.splitlines() if " shop " in row]
    cells = [cell.strip() for cell in re.split(r"[│┃|]", line) if cell.strip()]
    assert cells[:5] == [str(created["account_id"]), "shop", "active", "25.50 USD", "12.5"], line
    assert cells[-1] == "1", line  # one key


def test_wallet_credit_adds_to_the_balance(cli_settings: Settings) -> None:
    create_shop()
    result = ok(esimgate("wallet", "credit", "shop", "10.00", "--note", "x"))
    assert "new balance: 35.50 USD" in result.stdout, result.stdout
    assert balance_of(cli_settings, "shop") == 3_550

    async def last_entry(runtime: Runtime) -> tuple[int, int, str | None]:
        async with runtime.sessions() as session:
            entry = await session.scalar(select(LedgerEntry).order_by(LedgerEntry.id.desc()))
        assert entry is not None
        return entry.amount_minor, entry.balance_after, entry.note

    assert with_runtime(cli_settings, last_entry) == (1_000, 3_550, "x")
    listed = ok(esimgate("accounts", "list"))
    assert "35.50 USD" in listed.stdout, listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["shop", "1.234"], "error: 1.234 has more decimals than USD allows"),
        (["shop", "--", "-5"], "error: a credit must be a positive amount"),
        (["shop", "0"], "error: a credit must be a positive amount"),
        (["shop", "ten"], "error: not an amount: 'ten'"),
        (["shop", "NaN"], "error: not an amount: 'NaN'"),
        (["nosuch", "1"], "error: no account 'nosuch'"),
    ],
)
def test_wallet_credit_refuses_bad_input_cleanly(
    cli_settings: Settings, args: list[str], message: str
) -> None:
    create_shop()
    refused(esimgate("wallet", "credit", *args), message)
    assert balance_of(cli_settings, "shop") == 2_550


def test_wallet_credit_of_a_negative_amount_without_separator_is_refused(
    cli_settings: Settings,
) -> None:
    create_shop()
    result = esimgate("wallet", "credit", "shop", "-5")
    # Click reads "-5" as an option; either way it is a clean usage error and nothing moves.
    refused(result, "-5")
    assert balance_of(cli_settings, "shop") == 2_550


@pytest.mark.parametrize("amount", ["[/x]", "[bold]5"])
def test_error_messages_show_user_input_verbatim(cli_settings: Settings, amount: str) -> None:
    create_shop()
    refused(esimgate("wallet", "credit", "shop", amount), f"error: not an amount: '{amount}'")


@pytest.mark.parametrize("name", ["[/shop]", "[bold]shop"])
def test_accounts_list_shows_names_verbatim(cli_settings: Settings, name: str) -> None:
    ok(esimgate("accounts", "create", name))
    result = ok(esimgate("accounts", "list"))
    assert name in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--currency", "XXX"], "error: unsupported currency 'XXX'"),
        (["x", "--markup-percent", "-1"], "error: markup percent must be between 0 and 10000"),
        (["x", "--markup-percent", "1.234"], "error: markup percent allows at most two decimals"),
        (["x", "--balance", "1.001"], "error: 1.001 has more decimals than USD allows"),
        (["x", "--balance", "1.5", "--currency", "JPY"], "more decimals than JPY allows"),
    ],
)
def test_accounts_create_refuses_bad_input_cleanly(
    cli_settings: Settings, args: list[str], message: str
) -> None:
    refused(esimgate("accounts", "create", *args), message)

    async def count(runtime: Runtime) -> int:
        async with runtime.sessions() as session:
            return len((await session.scalars(select(Account))).all())

    assert with_runtime(cli_settings, count) == 0  # nothing half-created


def test_accounts_create_in_a_zero_decimal_currency(cli_settings: Settings) -> None:
    result = ok(esimgate("accounts", "create", "tokyo", "--currency", "jpy", "--balance", "1500"))
    assert "created" in result.stdout
    assert balance_of(cli_settings, "tokyo") == 1_500


# --- keys ---------------------------------------------------------------------------------------


def test_keys_create_and_revoke(cli_settings: Settings) -> None:
    created = create_shop()
    result = ok(esimgate("keys", "create", "shop"))
    code = re.search(r"access code: (esg_[0-9a-f]{24})", result.stdout)
    secret = re.search(r"secret key:\s+(sk_\S+)", result.stdout)
    assert code and secret, result.stdout
    access_code, secret_key = code.group(1), secret.group(1)
    assert access_code != created["access_code"]
    key, stored = key_row(cli_settings, access_code)
    assert (key.account_id, key.status, stored) == (created["account_id"], "active", secret_key)
    creds = Credentials(created["account_id"], access_code, secret_key)
    response = signed_balance(cli_settings, creds)
    assert response.status_code == 200, response.text

    revoked = ok(esimgate("keys", "revoke", access_code))
    assert f"revoked {access_code}" in revoked.stdout, revoked.stdout
    key, _ = key_row(cli_settings, access_code)
    assert key.status == ApiKeyStatus.REVOKED and key.revoked_at is not None
    first, _ = key_row(cli_settings, created["access_code"])
    assert first.status == ApiKeyStatus.ACTIVE  # only that key
    response = signed_balance(cli_settings, creds)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "INVALID_API_KEY", response.text


def test_keys_for_unknown_account_or_code_are_refused(cli_settings: Settings) -> None:
    refused(esimgate("keys", "create", "nosuch"), "error: no account 'nosuch'")
    refused(esimgate("keys", "revoke", "esg_nosuch"), "error: no API key 'esg_nosuch'")


# --- catalogue and database ---------------------------------------------------------------------


def test_catalog_sync_prints_a_table(cli_settings: Settings) -> None:
    async def upstream_size(runtime: Runtime) -> int:
        from esimgate.providers.repository import ProviderAccountRepository

        async with runtime.sessions() as session:
            account = await ProviderAccountRepository(session).by_name(SIMULATOR)
        assert account is not None
        return len(await runtime.providers.adapter(account).list_packages())

    size = with_runtime(cli_settings, upstream_size)
    result = ok(esimgate("catalog", "sync"))
    header = next(line for line in result.stdout.splitlines() if "provider" in line)
    assert re.split(r"\s*[│┃]\s*", header.strip(" │┃")) == [
        "provider",
        "added",
        "updated",
        "delisted",
        "unchanged",
        "price changes",
    ], result.stdout
    (row,) = [line for line in result.stdout.splitlines() if f" {SIMULATOR} " in line]
    cells = re.split(r"\s*[│┃]\s*", row.strip(" │┃"))
    assert cells == [SIMULATOR, "0", "0", "0", str(size), "0"], result.stdout


def test_db_upgrade(cli_settings: Settings) -> None:
    result = ok(esimgate("db", "upgrade"))
    assert result.stdout.strip() == "database is up to date"


def test_help_lists_the_commands() -> None:
    result = esimgate("--help")
    assert result.exit_code == 0, result.output
    for command in ("accounts", "keys", "wallet", "catalog", "db", "serve", "worker"):
        assert command in result.stdout
