"""Order throughput and the gateway's own overhead per order, on PostgreSQL.

    .venv/bin/python bench/bench_orders.py [--orders 400] [--concurrency 16]

Drives signed POST /api/v1/business/esims/order requests through the ASGI app in-process (no
network between client and server, so the figures are the gateway's, not the loopback's),
with the built-in simulator at zero latency as the upstream. Two scenarios: every order on one
wallet (the account row lock serialises balance decisions) and orders spread over 100 wallets.
The overhead of an order is its end-to-end time minus the time spent inside the provider call.

It uses its own database (ESIMGATE_BENCH_DATABASE_URL, default
postgresql+asyncpg://postgres@127.0.0.1:5432/esimgate_bench), dropping and recreating its schema.
Bounded: it sends exactly --orders requests per scenario and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet
from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import Credentials, hmac_headers

from esimgate.accounts.service import NewAccount, create_account
from esimgate.app import create_app
from esimgate.auth.keys import issue_key
from esimgate.catalog.models import CatalogPackage
from esimgate.config import Settings
from esimgate.db.engine import create_engine
from esimgate.db.migrate import upgrade
from esimgate.providers.base import OrderRequest, Provider, Purchase
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.providers.service import ensure_default_provider, sync_catalogue
from esimgate.runtime import Runtime, build_runtime
from esimgate.wallet.service import credit

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/esimgate_bench"


class TimedProvider:
    """Delegates to the simulator and records how long each create took upstream."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.capabilities = inner.capabilities
        self.max_usage_batch = inner.max_usage_batch
        self.upstream: dict[str, float] = {}

    async def create_order(self, request: OrderRequest) -> Purchase:
        started = time.perf_counter()
        try:
            return await self.inner.create_order(request)
        finally:
            self.upstream[request.reference] = time.perf_counter() - started

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def fresh_database(url: str) -> None:
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    admin_url, _, name = plain.rpartition("/")
    admin = await asyncpg.connect(admin_url + "/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await upgrade(engine)
    await engine.dispose()


async def accounts(runtime: Runtime, count: int, balance_minor: int) -> list[Credentials]:
    out = []
    async with runtime.sessions() as session, session.begin():
        for index in range(count):
            account = await create_account(session, runtime.clock, NewAccount(f"bench-{index}"))
            await credit(session, runtime.clock, account.id, balance_minor, "bench")
            issued = await issue_key(session, runtime.clock, runtime.box, account.id)
            out.append(Credentials(account.id, issued.key.access_code, issued.secret_key))
    return out


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def scenario(
    runtime: Runtime,
    client: httpx.AsyncClient,
    timed: TimedProvider,
    wallets: list[Credentials],
    code: str,
    orders: int,
    concurrency: int,
) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(concurrency)
    latencies: dict[str, float] = {}
    failures: list[str] = []

    async def one(index: int) -> None:
        creds = wallets[index % len(wallets)]
        body = json.dumps({"packageCode": code}).encode()
        async with semaphore:
            started = time.perf_counter()
            response = await client.post(
                "/api/v1/business/esims/order",
                content=body,
                headers={**hmac_headers(creds, body), "Content-Type": "application/json"},
            )
            elapsed = time.perf_counter() - started
        if response.status_code != 200:
            failures.append(f"{response.status_code} {response.text[:120]}")
            return
        latencies[response.json()["orderReference"]] = elapsed

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(orders)))
    wall = time.perf_counter() - started
    overhead = [latencies[ref] - timed.upstream.get(ref, 0.0) for ref in latencies]
    total = list(latencies.values())
    return {
        "wallets": len(wallets),
        "orders": orders,
        "completed": len(latencies),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "seconds": round(wall, 2),
        "orders_per_second": round(len(latencies) / wall, 1),
        "latency_ms_p50": round(percentile(total, 0.5) * 1000, 1),
        "latency_ms_p99": round(percentile(total, 0.99) * 1000, 1),
        "overhead_ms_p50": round(percentile(overhead, 0.5) * 1000, 1),
        "overhead_ms_p99": round(percentile(overhead, 0.99) * 1000, 1),
        "overhead_ms_mean": round(statistics.fmean(overhead) * 1000, 1),
    }


async def main(orders: int, concurrency: int) -> list[dict[str, Any]]:
    url = os.environ.get("ESIMGATE_BENCH_DATABASE_URL", DEFAULT_URL)
    await fresh_database(url)
    settings = Settings(
        database_url=url,
        master_key=Fernet.generate_key().decode(),
        embedded_worker=False,
        rate_limit_per_hour=10**9,
    )
    runtime = build_runtime(settings)
    async with runtime.sessions() as session, session.begin():
        await ensure_default_provider(session, runtime.clock)
        await sync_catalogue(session, runtime.clock, runtime.providers)
    async with runtime.sessions() as session:
        simulator = await ProviderAccountRepository(session).by_name("simulator")
        assert simulator is not None
        code = await session.scalar(
            select(CatalogPackage.code)
            .where(CatalogPackage.region == "Turkey", CatalogPackage.is_topup.is_(False))
            .limit(1)
        )
        assert code is not None
    timed = TimedProvider(runtime.providers.adapter(simulator))
    runtime.providers.override(simulator.id, timed)  # type: ignore[arg-type]
    app = create_app(runtime=runtime, migrate=False, embedded_worker=False)
    transport = httpx.ASGITransport(app=app)
    results = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        one_wallet = await accounts(runtime, 1, 10**9)
        results.append(
            await scenario(runtime, client, timed, one_wallet, code, orders, concurrency)
        )
        many = await accounts(runtime, 100, 10**8)
        results.append(await scenario(runtime, client, timed, many, code, orders, concurrency))
    await runtime.aclose()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    for row in asyncio.run(main(args.orders, args.concurrency)):
        print(json.dumps(row))
