"""Refresh storms and the background usage sync at scale, on PostgreSQL.

    .venv/bin/python bench/bench_usage.py storm [--refreshes 1000]
    .venv/bin/python bench/bench_usage.py sync [--esims 100000] [--rate 20] [--batch 100]

storm: N concurrent POST /esims/{iccid}/refresh of one eSIM, split over two app instances (two
runtimes sharing the database, like two server processes): how many upstream calls they made.

sync: N simulated eSIMs (bulk-inserted: 80 % waiting to be installed, 20 % in use) synced once
against the simulator limited to R requests/s with batches of B. Reports the time against the
floor N / (R·B) and the process's peak RSS.

Own database (ESIMGATE_BENCH_DATABASE_URL, default
postgresql+asyncpg://postgres@127.0.0.1:5432/esimgate_bench), schema dropped and recreated.
Bounded in count; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_orders import DEFAULT_URL, accounts, fresh_database
from tests.support import hmac_headers

from esimgate.app import create_app
from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.clock import FrozenClock
from esimgate.config import Settings
from esimgate.esims.models import Esim
from esimgate.esims.sync import sync_due
from esimgate.orders.models import Order
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.providers.service import ensure_default_provider, sync_catalogue
from esimgate.providers.simulator.models import SimEsim, SimOrder
from esimgate.runtime import Runtime, build_runtime


def settings(url: str, key: str) -> Settings:
    return Settings(
        database_url=url, master_key=key, embedded_worker=False, rate_limit_per_hour=10**9
    )


class Counting:
    """The simulator with a configurable rate and a count of usage queries."""

    def __init__(self, inner: Any, rate: float) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.capabilities = inner.capabilities
        self.max_usage_batch = inner.max_usage_batch
        self.requests_per_second = rate
        self.usage_calls = 0

    async def query_usage(self, esims: Any) -> Any:
        self.usage_calls += 1
        return await self.inner.query_usage(esims)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def prepared(url: str, key: str, clock: FrozenClock | None = None) -> Runtime:
    runtime = build_runtime(settings(url, key), clock)
    async with runtime.sessions() as session, session.begin():
        await ensure_default_provider(session, runtime.clock)
        await sync_catalogue(session, runtime.clock, runtime.providers)
    return runtime


async def counting(runtime: Runtime, rate: float, batch: int | None = None) -> Counting:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name("simulator")
    assert account is not None
    wrapper = Counting(runtime.providers.adapter(account), rate)
    if batch is not None:
        wrapper.max_usage_batch = batch
    runtime.providers.override(account.id, wrapper)  # type: ignore[arg-type]
    return wrapper


async def storm(refreshes: int) -> dict[str, Any]:
    url = os.environ.get("ESIMGATE_BENCH_DATABASE_URL", DEFAULT_URL)
    await fresh_database(url)
    key = Fernet.generate_key().decode()
    first = await prepared(url, key)
    second = build_runtime(settings(url, key))
    upstreams = [await counting(first, 1000), await counting(second, 1000)]
    async with first.sessions() as session:
        code = await session.scalar(
            select(CatalogPackage.code).where(
                CatalogPackage.region == "Turkey", CatalogPackage.is_topup.is_(False)
            )
        )
    (creds,) = await accounts(first, 1, 10**8)
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(
                create_app(runtime=rt, migrate=False, embedded_worker=False)
            ),
            base_url="http://bench",
        )
        for rt in (first, second)
    ]
    body = json.dumps({"packageCode": code}).encode()
    order = await clients[0].post(
        "/api/v1/business/esims/order",
        content=body,
        headers={**hmac_headers(creds, body), "Content-Type": "application/json"},
    )
    iccid = order.json()["esims"][0]["iccid"]

    async def refresh(index: int) -> int:
        response = await clients[index % 2].post(
            f"/api/v1/business/esims/{iccid}/refresh", headers=hmac_headers(creds)
        )
        return response.status_code

    started = time.perf_counter()
    statuses = await asyncio.gather(*(refresh(i) for i in range(refreshes)))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.aclose()
    await first.aclose()
    await second.aclose()
    return {
        "benchmark": "refresh storm",
        "refreshes": refreshes,
        "processes (app instances)": 2,
        "ok": statuses.count(200),
        "upstream_calls": sum(u.usage_calls for u in upstreams),
        "seconds": round(elapsed, 2),
    }


async def seed(runtime: Runtime, count: int) -> None:
    """Bulk rows as if `count` eSIMs had been bought: ours and the simulator's side."""
    now = runtime.clock.now()
    rng = random.Random(7)
    async with runtime.sessions() as session:
        package, offer = (
            await session.execute(
                select(CatalogPackage, PackageOffer)
                .join(PackageOffer, PackageOffer.package_id == CatalogPackage.id)
                .where(CatalogPackage.region == "Turkey", CatalogPackage.data_bytes.is_not(None))
                .limit(1)
            )
        ).one()
    (creds,) = await accounts(runtime, 1, 10**9)
    per_order = 10
    async with runtime.sessions() as session, session.begin():
        for start in range(0, count, 5000):
            size = min(5000, count - start)
            orders = [
                {
                    "reference": f"bench_{start + i}",
                    "account_id": creds.account_id,
                    "kind": "esim",
                    "status": "completed",
                    "upstream_state": "done",
                    "package_id": package.id,
                    "package_code": package.code,
                    "package_name": package.name,
                    "quantity": per_order,
                    "unit_price_minor": 100,
                    "amount_minor": 100 * per_order,
                    "currency": "USD",
                    "unit_cost_e4": offer.cost_e4,
                    "provider_account_id": offer.provider_account_id,
                    "provider_code": offer.provider_code,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(0, size, per_order)
            ]
            order_ids = (
                (await session.execute(insert(Order).returning(Order.id), orders)).scalars().all()
            )
            sim_orders = (
                (
                    await session.execute(
                        insert(SimOrder).returning(SimOrder.id),
                        [
                            {
                                "account": "simulator",
                                "reference": o["reference"],
                                "package_code": offer.provider_code,
                                "quantity": per_order,
                                "unit_cost_e4": offer.cost_e4,
                                "currency": "USD",
                                "state": "completed",
                                "created_at": now,
                            }
                            for o in orders
                        ],
                    )
                )
                .scalars()
                .all()
            )
            sims, ours = [], []
            for i in range(size):
                n = start + i
                iccid = f"8999901{n:012d}"
                in_use = rng.random() < 0.2
                total = package.data_bytes
                used = rng.randrange(0, (total or 2**30) // 3) if in_use else 0
                sims.append(
                    {
                        "order_id": sim_orders[i // per_order],
                        "iccid": iccid,
                        "provider_esim_id": f"SIMT{n:016d}",
                        "package_code": offer.provider_code,
                        "smdp_address": "rsp.simulator.esimgate.invalid",
                        "matching_id": f"{n:032X}",
                        "lpa": f"LPA:1$rsp.simulator.esimgate.invalid${n:032X}",
                        "total_bytes": total,
                        "used_bytes": used,
                        "validity_days": package.validity_days,
                        "activated_at": now if in_use else None,
                        "expires_at": now + timedelta(days=package.validity_days)
                        if in_use
                        else None,
                        "profile_state": "enabled" if in_use else "released",
                        "line_state": "active" if in_use else "not_active",
                        "plan_state": "in_use" if in_use else "unused",
                        "created_at": now,
                    }
                )
                ours.append(
                    {
                        "account_id": creds.account_id,
                        "order_id": order_ids[i // per_order],
                        "iccid": iccid,
                        "provider_account_id": offer.provider_account_id,
                        "provider_esim_id": f"SIMT{n:016d}",
                        "provider_code": offer.provider_code,
                        "package_id": package.id,
                        "smdp_address": "rsp.simulator.esimgate.invalid",
                        "matching_id": f"{n:032X}",
                        "lpa": f"LPA:1$rsp.simulator.esimgate.invalid${n:032X}",
                        "qr_token": f"bench{n}",
                        "status": "NEW",
                        "raw_status": {},
                        "total_bytes": total,
                        "used_bytes": 0,
                        "validity_days": package.validity_days,
                        "unit_price_minor": 100,
                        "created_at": now,
                        "next_sync_at": now,
                    }
                )
            await session.execute(insert(SimEsim), sims)
            await session.execute(insert(Esim), ours)


async def sync_bench(count: int, rate: float, batch: int) -> dict[str, Any]:
    url = os.environ.get("ESIMGATE_BENCH_DATABASE_URL", DEFAULT_URL)
    await fresh_database(url)
    clock = FrozenClock()
    runtime = await prepared(url, Fernet.generate_key().decode(), clock)
    upstream = await counting(runtime, rate, batch)
    seeded = time.perf_counter()
    await seed(runtime, count)
    seed_seconds = time.perf_counter() - seeded
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    stats = await sync_due(runtime)
    elapsed = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await runtime.aclose()
    floor = count / (rate * batch)
    return {
        "benchmark": "usage sync",
        "esims": count,
        "rate_per_second": rate,
        "batch": batch,
        "synced": stats.esims,
        "requests": stats.requests,
        "upstream_calls": upstream.usage_calls,
        "failed_requests": stats.failed_requests,
        "events": stats.events,
        "seconds": round(elapsed, 1),
        "floor_seconds": round(floor, 1),
        "ratio_to_floor": round(elapsed / floor, 2),
        "peak_rss_mb_before": round(rss_before / 1024, 1),
        "peak_rss_mb_after": round(rss_after / 1024, 1),
        "seed_seconds": round(seed_seconds, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="which", required=True)
    storm_args = sub.add_parser("storm")
    storm_args.add_argument("--refreshes", type=int, default=1000)
    sync_args = sub.add_parser("sync")
    sync_args.add_argument("--esims", type=int, default=100_000)
    sync_args.add_argument("--rate", type=float, default=20)
    sync_args.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    if args.which == "storm":
        print(json.dumps(asyncio.run(storm(args.refreshes))))
    else:
        print(json.dumps(asyncio.run(sync_bench(args.esims, args.rate, args.batch))))
