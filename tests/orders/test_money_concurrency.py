"""Money under concurrency (PostgreSQL): no overdraft, one purchase per idempotency key.

Each test shows that it really ran concurrently (overlapping reserve transactions) and keeps a
deliberately broken variant that its check fails against, so it cannot pass by accident."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account
from esimgate.orders import service
from esimgate.orders.models import Order
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.runtime import Runtime
from esimgate.wallet import service as wallet
from esimgate.wallet.audit import ledger_violations
from esimgate.wallet.models import LedgerEntry
from tests.conftest import _truncate
from tests.fakes.faulty import FaultyProvider
from tests.orders.test_place_order import ORDER, cents, package
from tests.support import Credentials, SignedClient

pytestmark = pytest.mark.postgres

BALANCE = 100_000  # 1000.00
PRICE = 7_000  # 70.00
ORDERS = 50
ROUNDS = 20


@dataclass
class Round:
    statuses: list[int]
    codes: list[str]
    balance_minor: int
    violations: list[str]


class Overlap:
    """Wraps an async function and records how many calls ran at the same time."""

    def __init__(self, inner: Callable[..., Awaitable[Any]]) -> None:
        self.inner = inner
        self.running = 0
        self.peak = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await self.inner(*args, **kwargs)
        finally:
            self.running -= 1


def check(result: Round) -> None:
    """The no-overdraft property for one round: exact counts, exact balance, sound books."""
    assert all(status < 500 for status in result.statuses), result.statuses
    counts = Counter(result.codes)
    assert counts == {"completed": 14, "INSUFFICIENT_BALANCE": 36}, counts
    assert result.balance_minor == 2_000, result.balance_minor
    assert result.violations == [], result.violations


async def seventy_dollar_package(runtime: Runtime) -> tuple[str, int]:
    """A package costing less than 70.00 and the fixed markup that makes it cost exactly that."""
    pkg = await package(runtime, "Turkey")
    price = cents(pkg["cost_e4"])
    assert 0 < price < PRICE, pkg
    return pkg["code"], PRICE - price


async def run_round(
    runtime: Runtime, client: httpx.AsyncClient, make_account: Any, clock_ms: Any, name: str
) -> Round:
    code, markup = await seventy_dollar_package(runtime)
    creds: Credentials = await make_account(name, balance_minor=BALANCE, markup_fixed_minor=markup)
    api = SignedClient(client, creds, clock_ms)
    # The ASGI transport re-raises an unhandled app error: count it as the 500 it would be, and
    # wait for every request so none outlives the round.
    outcomes = await asyncio.gather(
        *(api.post(ORDER, {"packageCode": code}) for _ in range(ORDERS)), return_exceptions=True
    )
    statuses: list[int] = []
    codes: list[str] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            statuses.append(500)
            codes.append(type(outcome).__name__)
            continue
        body = outcome.json()
        statuses.append(outcome.status_code)
        codes.append(body.get("status") if outcome.status_code == 200 else body.get("code"))
    async with runtime.sessions() as session:
        account = await session.get(Account, creds.account_id)
        assert account is not None
        violations = await ledger_violations(session)
        return Round(statuses, codes, account.balance_minor, violations)


async def test_no_overdraft_under_concurrent_orders(
    runtime: Runtime,
    client: httpx.AsyncClient,
    make_account: Any,
    api: SignedClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overlap = Overlap(service._reserve)
    monkeypatch.setattr(service, "_reserve", overlap)
    peaks = []
    for index in range(ROUNDS):
        overlap.peak = 0
        result = await run_round(runtime, client, make_account, api.clock_ms, f"round-{index}")
        check(result)
        peaks.append(overlap.peak)
    assert max(peaks) > 1, f"the orders never overlapped: {peaks}"


async def _unlocked_account(session: AsyncSession, account_id: int) -> Account:
    """The broken wallet: reads the balance without the row lock, then lets others run."""
    account = await session.get(Account, account_id)
    assert account is not None
    await asyncio.sleep(0.01)
    return account


async def test_the_check_catches_a_wallet_without_the_row_lock(
    runtime: Runtime,
    client: httpx.AsyncClient,
    make_account: Any,
    api: SignedClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wallet, "lock_account", _unlocked_account)
    result = await run_round(runtime, client, make_account, api.clock_ms, "broken")
    monkeypatch.undo()
    with pytest.raises(AssertionError):
        check(result)
    # Lost updates: more orders were sold than the balance covers, and the books show it.
    assert Counter(result.codes)["completed"] > 14, result.codes
    assert result.violations, "the broken wallet left sound books"
    # The sabotage wrecked the books on purpose; clear them so the autouse audit checks a
    # clean slate rather than this deliberate damage.
    await _truncate(runtime)


@pytest.fixture
async def faulty(runtime: Runtime) -> FaultyProvider:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name("simulator")
    assert account is not None
    fake = FaultyProvider(runtime.providers.adapter(account))
    runtime.providers.override(account.id, fake)
    return fake


async def test_concurrent_copies_of_one_idempotency_key_buy_once(
    api: SignedClient,
    runtime: Runtime,
    faulty: FaultyProvider,
    creds: Credentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overlap = Overlap(service.place_order)
    monkeypatch.setattr("esimgate.api.v1.orders.place_order", overlap)
    pkg = await package(runtime, "Turkey")
    price = cents(pkg["cost_e4"])
    payload = {"packageCode": pkg["code"], "idempotency_key": f"key-{uuid.uuid4().hex}"}
    outcomes = await asyncio.gather(
        *(api.post(ORDER, payload) for _ in range(20)), return_exceptions=True
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, errors
    responses = [o for o in outcomes if isinstance(o, httpx.Response)]
    assert overlap.peak > 1, "the copies never overlapped"
    first = [r for r in responses if r.status_code == 200 and not r.json().get("duplicate")]
    assert len(first) == 1, [r.text for r in responses]
    reference = first[0].json()["orderReference"]
    assert first[0].json()["status"] == "completed"
    for response in responses:
        if response is first[0]:
            continue
        body = response.json()
        if response.status_code == 200:
            assert body["duplicate"] is True and body["orderReference"] == reference, body
        else:
            assert response.status_code == 409, response.text
            assert body["code"] == "DUPLICATE_REQUEST", body
    assert faulty.create_calls == 1
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
        debits = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.amount_minor < 0)
        )
        assert debits == 1
        account = await session.get(Account, creds.account_id)
        assert account is not None and account.balance_minor == 150_000 - price
