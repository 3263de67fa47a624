"""Money properties: refusals have no side effects, replays an hour later buy nothing, and no
random mix of balance, price and concurrency can overdraw a wallet."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from esimgate.auth.signature import sign
from esimgate.clock import FrozenClock, epoch_ms
from esimgate.orders.models import Order
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.runtime import Runtime
from esimgate.wallet.models import LedgerEntry
from tests.fakes.faulty import FaultyProvider
from tests.orders.test_place_order import ORDER, cents, package
from tests.support import Credentials, SignedClient


@pytest.fixture
async def counted(runtime: Runtime) -> FaultyProvider:
    """The simulator behind a call counter (no faults)."""
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name("simulator")
    assert account is not None
    wrapper = FaultyProvider(runtime.providers.adapter(account))
    runtime.providers.override(account.id, wrapper)
    return wrapper


async def rows(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessions() as session:
        ledger = await session.scalar(select(func.count()).select_from(LedgerEntry))
        orders = await session.scalar(select(func.count()).select_from(Order))
    return int(ledger or 0), int(orders or 0)


@pytest.mark.parametrize(
    "guard",
    ["+0.01", "-0.01", "as-string", -5, 0, 10**9, "1e3", None, True, [1], {"a": 1}],
)
async def test_a_wrong_price_guard_touches_nothing(
    api: SignedClient, runtime: Runtime, counted: FaultyProvider, guard: Any
) -> None:
    pkg = await package(runtime, "Portugal")
    exact = cents(pkg["cost_e4"])
    named = {
        "+0.01": (exact + 1) / 100,
        "-0.01": (exact - 1) / 100,
        "as-string": f"{exact / 100:.2f}",
    }
    value = named[guard] if isinstance(guard, str) and guard in named else guard
    before = await rows(runtime)
    payload: dict[str, Any] = {"packageCode": pkg["code"], "price": value}
    if guard is None:
        payload["price"] = "NaN"
    response = await api.post(ORDER, payload)
    assert response.status_code == 400, response.text
    assert response.json()["code"] in {"PRICE_MISMATCH", "INVALID_PARAMETER"}
    assert await rows(runtime) == before
    assert counted.create_calls == 0


async def test_insufficient_balance_calls_no_upstream(
    api: SignedClient, runtime: Runtime, counted: FaultyProvider, make_account: Any
) -> None:
    pkg = await package(runtime, "Portugal")
    poor = SignedClient(
        api.client,
        await make_account("poor", balance_minor=cents(pkg["cost_e4"]) - 1),
        api.clock_ms,
    )
    before = await rows(runtime)
    response = await poor.post(ORDER, {"packageCode": pkg["code"]})
    assert response.json()["code"] == "INSUFFICIENT_BALANCE", response.text
    assert await rows(runtime) == before
    assert counted.create_calls == 0


async def test_a_request_replayed_an_hour_later_buys_nothing(
    api: SignedClient,
    runtime: Runtime,
    counted: FaultyProvider,
    clock: FrozenClock,
    creds: Credentials,
) -> None:
    pkg = await package(runtime, "Portugal")
    body = json.dumps({"packageCode": pkg["code"]}).encode()
    request_id = "0b6cf1a2-5d3e-4c4f-9a8b-7c6d5e4f3a2b"
    first = await api.client.post(
        ORDER, content=body, headers={**api.headers(body, request_id=request_id)}
    )
    assert first.status_code == 200, first.text
    clock.advance(hours=1)
    stale = await api.client.post(
        ORDER, content=body, headers={**api.headers(body, request_id=request_id)}
    )
    assert stale.status_code == 409, stale.text
    assert stale.json()["code"] == "DUPLICATE_REQUEST"
    assert stale.json()["details"]["orderReference"] == first.json()["orderReference"]
    assert counted.create_calls == 1
    ledger, orders = await rows(runtime)
    assert orders == 1 and ledger == 1 + 2  # credit, reserve, capture


async def _order_burst(
    client: httpx.AsyncClient, creds: Credentials, code: str, count: int, now_ms: int
) -> list[httpx.Response]:
    body = json.dumps({"packageCode": code}).encode()

    async def one(index: int) -> httpx.Response:
        request_id = f"{index:08x}-0000-4000-8000-{now_ms:012x}"[:36]
        timestamp = str(now_ms)
        headers = {
            "RT-AccessCode": creds.access_code,
            "RT-RequestID": request_id,
            "RT-Timestamp": timestamp,
            "RT-Signature": sign(creds.secret_key, timestamp, request_id, creds.access_code, body),
            "Content-Type": "application/json",
        }
        return await client.post(ORDER, content=body, headers=headers)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


@pytest.mark.postgres
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    balance_cents=st.integers(min_value=0, max_value=50_000),
    price_cents=st.integers(min_value=100, max_value=9_000),
    concurrency=st.integers(min_value=1, max_value=24),
)
async def test_no_random_mix_overdraws(
    runtime: Runtime,
    client: httpx.AsyncClient,
    make_account: Any,
    clock: FrozenClock,
    balance_cents: int,
    price_cents: int,
    concurrency: int,
) -> None:
    pkg = await package(runtime, "Portugal")
    markup = price_cents - cents(pkg["cost_e4"])
    if markup < 0:
        price_cents = cents(pkg["cost_e4"])
        markup = 0
    creds = await make_account(
        f"prop-{balance_cents}-{price_cents}-{concurrency}-{epoch_ms(clock.now())}",
        balance_minor=balance_cents,
        markup_fixed_minor=markup,
    )
    clock.advance(milliseconds=1)
    responses = await _order_burst(client, creds, pkg["code"], concurrency, epoch_ms(clock.now()))
    codes = [r.json().get("code") if r.status_code != 200 else "OK" for r in responses]
    assert all(r.status_code < 500 for r in responses), codes
    expected = min(concurrency, balance_cents // price_cents)
    assert codes.count("OK") == expected, (balance_cents, price_cents, concurrency, codes)
    assert codes.count("INSUFFICIENT_BALANCE") == concurrency - expected
    balance = (
        await SignedClient(client, creds, lambda: epoch_ms(clock.now())).get(
            "/api/v1/business/balance"
        )
    ).json()["data"]["balance"]
    assert round(balance * 100) == balance_cents - expected * price_cents


@pytest.mark.postgres
async def test_twenty_concurrent_copies_of_one_signed_order_buy_once(
    api: SignedClient, runtime: Runtime, counted: FaultyProvider
) -> None:
    pkg = await package(runtime, "Portugal")
    body = json.dumps({"packageCode": pkg["code"]}).encode()
    headers = {**api.headers(body), "Content-Type": "application/json"}
    responses = await asyncio.gather(
        *(api.client.post(ORDER, content=body, headers=headers) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 19, [r.text for r in responses]
    assert all(r.json()["code"] == "DUPLICATE_REQUEST" for r in responses if r.status_code == 409)
    assert counted.create_calls == 1
    ledger, orders = await rows(runtime)
    assert orders == 1 and ledger == 1 + 2


async def test_idempotency_keys_are_scoped_per_account(
    api: SignedClient, runtime: Runtime, counted: FaultyProvider, make_account: Any
) -> None:
    pkg = await package(runtime, "Portugal")
    payload = {"packageCode": pkg["code"], "idempotency_key": "shared-key"}
    mine = await api.post(ORDER, payload)
    other = SignedClient(
        api.client, await make_account("other", balance_minor=100_000), api.clock_ms
    )
    theirs = await other.post(ORDER, payload)
    assert mine.status_code == theirs.status_code == 200, theirs.text
    assert "duplicate" not in theirs.json()
    assert mine.json()["orderReference"] != theirs.json()["orderReference"]
    assert counted.create_calls == 2
