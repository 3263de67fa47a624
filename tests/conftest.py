"""Shared fixtures: one database per test session (SQLite by default, PostgreSQL when
ESIMGATE_TEST_DATABASE_URL is set), Redis when ESIMGATE_TEST_REDIS_URL is set, a controllable
clock, and the app driven over real HTTP semantics through httpx's ASGI transport.

If a database or Redis is configured but unreachable, the whole run fails: CI must never
silently fall back to SQLite or skip Redis.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from esimgate.accounts.service import NewAccount, create_account
from esimgate.app import create_app
from esimgate.auth.keys import issue_key
from esimgate.clock import FrozenClock, epoch_ms
from esimgate.config import Settings
from esimgate.db.base import Base
from esimgate.db.engine import create_engine
from esimgate.db.migrate import upgrade
from esimgate.providers.service import ensure_default_provider, sync_catalogue
from esimgate.runtime import Runtime, build_runtime
from esimgate.wallet.audit import ledger_violations
from esimgate.wallet.service import credit
from tests.support import Credentials, SignedClient

TEST_DATABASE_URL = os.environ.get("ESIMGATE_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("ESIMGATE_TEST_REDIS_URL")
MASTER_KEY = Fernet.generate_key().decode()
# Tables filled once per session (the simulator's catalogue) and kept between tests.
SESSION_TABLES = {"provider_accounts", "catalog_packages", "package_offers", "alembic_version"}


def pytest_report_header() -> list[str]:
    return [
        f"esimgate database: {'PostgreSQL' if TEST_DATABASE_URL else 'SQLite'}",
        f"esimgate redis: {'yes' if TEST_REDIS_URL else 'no (database admission)'}",
    ]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if TEST_DATABASE_URL:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set ESIMGATE_TEST_DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        return TEST_DATABASE_URL
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def _schema(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fresh schema through the real migrations, and the simulator's catalogue, once."""

    async def setup() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    await connection.execute(text("DROP SCHEMA public CASCADE"))
                    await connection.execute(text("CREATE SCHEMA public"))
        except OSError as exc:
            pytest.exit(f"ESIMGATE_TEST_DATABASE_URL is set but unreachable: {exc}", returncode=3)
        await upgrade(engine)
        await engine.dispose()
        if TEST_REDIS_URL:
            from redis.asyncio import Redis

            redis = Redis.from_url(TEST_REDIS_URL)
            try:
                await redis.ping()
            except Exception as exc:
                pytest.exit(f"ESIMGATE_TEST_REDIS_URL is set but unreachable: {exc}", returncode=3)
            finally:
                await redis.aclose()
        runtime = build_runtime(_settings(database_url, tmp_path_factory.mktemp("keys")))
        async with runtime.sessions() as session, session.begin():
            await ensure_default_provider(session, runtime.clock)
            await sync_catalogue(session, runtime.clock, runtime.providers)
        await runtime.aclose()

    asyncio.run(setup())
    yield


def _settings(database_url: str, key_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "redis_url": TEST_REDIS_URL,
        "redis_prefix": f"esimgate-test-{uuid.uuid4().hex[:12]}",
        "master_key": MASTER_KEY,
        "master_key_file": key_dir / "unused.key",
        "embedded_worker": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str, _schema: None, tmp_path: Path) -> Settings:
    return _settings(database_url, tmp_path)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def runtime(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    rt = build_runtime(settings, clock)
    try:
        yield rt
        async with rt.sessions() as session:
            problems = await ledger_violations(session)
        assert not problems, "ledger invariants broken after the test:\n" + "\n".join(problems)
    finally:
        await _truncate(rt)
        await rt.aclose()


async def _truncate(runtime: Runtime) -> None:
    tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name not in SESSION_TABLES]
    async with runtime.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(t.name for t in tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await connection.execute(table.delete())


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime, migrate=False, embedded_worker=False)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://esimgate.test") as http:
        yield http


MakeAccount = Callable[..., Awaitable[Credentials]]


@pytest.fixture
def make_account(runtime: Runtime) -> MakeAccount:
    """Create an account (with balance and markup) and an API key; returns its credentials."""

    async def make(
        name: str = "acme",
        *,
        balance_minor: int = 0,
        currency: str = "USD",
        markup_percent_bp: int = 0,
        markup_fixed_minor: int = 0,
    ) -> Credentials:
        async with runtime.sessions() as session, session.begin():
            account = await create_account(
                session,
                runtime.clock,
                NewAccount(name, currency, markup_percent_bp, markup_fixed_minor),
            )
            if balance_minor:
                await credit(session, runtime.clock, account.id, balance_minor, "test")
            issued = await issue_key(session, runtime.clock, runtime.box, account.id)
        return Credentials(account.id, issued.key.access_code, issued.secret_key)

    return make


@pytest.fixture
async def creds(make_account: MakeAccount) -> Credentials:
    return await make_account("acme", balance_minor=150_000)


@pytest.fixture
def api(client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock) -> SignedClient:
    return SignedClient(client, creds, lambda: epoch_ms(clock.now()))
