"""Upstream faults on POST /esims/order: every order ends completed and charged once, or failed
and fully released; an ambiguous outcome stays pending (money reserved) until reconciliation asks
the upstream by our reference. The upstream is never asked to buy twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from esimgate.accounts.models import Account
from esimgate.clock import FrozenClock
from esimgate.config import Settings
from esimgate.orders import service
from esimgate.orders.models import Order, OrderStatus
from esimgate.orders.request import parse_order
from esimgate.orders.tasks import reconcile_pending
from esimgate.providers.base import OrderRequest, PurchaseState
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.runtime import Runtime
from esimgate.wallet.models import LedgerEntry, Reservation
from esimgate.worker.engine import Worker
from tests.conftest import _settings
from tests.fakes.faulty import COMMITTING, MODES, FaultyProvider, Mode
from tests.orders.test_place_order import ORDER, cents, package
from tests.support import Credentials, SignedClient

BALANCE = 150_000  # the `creds` fixture's credit
TIMEOUT = 0.2

# mode → (status in the POST response, status after reconciliation)
EXPECTED: dict[Mode, tuple[str, str]] = {
    "ok": ("completed", "completed"),
    "business_error": ("failed", "failed"),
    "unavailable": ("failed", "failed"),
    "http_5xx": ("pending_details", "failed"),
    "timeout_after_commit": ("pending_details", "completed"),
    "invalid_json_after_commit": ("pending_details", "completed"),
    "hang": ("pending_details", "failed"),
    "crash_after_commit": ("pending_details", "completed"),
}
assert set(EXPECTED) == set(MODES)


@pytest.fixture
def settings(database_url: str, _schema: None, tmp_path: Path) -> Settings:
    return _settings(database_url, tmp_path, provider_timeout_seconds=TIMEOUT)


@pytest.fixture
async def faulty(runtime: Runtime) -> FaultyProvider:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name("simulator")
    assert account is not None
    fake = FaultyProvider(runtime.providers.adapter(account))
    runtime.providers.override(account.id, fake)
    return fake


async def balance(runtime: Runtime, account_id: int) -> int:
    async with runtime.sessions() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        return account.balance_minor


async def ledger_kinds(runtime: Runtime, account_id: int) -> list[str]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(LedgerEntry.kind)
            .where(LedgerEntry.account_id == account_id)
            .order_by(LedgerEntry.id)
        )
        return [str(kind) for kind in rows]


async def order_by_reference(runtime: Runtime, reference: str) -> Order:
    async with runtime.sessions() as session:
        order = (await session.scalars(select(Order).where(Order.reference == reference))).one()
        session.expunge(order)
        return order


async def order_count(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Order)) or 0)


def settled_kinds(status: str) -> list[str]:
    return ["credit", "reserve", "capture" if status == "completed" else "release"]


async def reconcile_later(runtime: Runtime, clock: FrozenClock) -> dict[str, int]:
    clock.advance(seconds=runtime.settings.reconcile_after_seconds + 1)
    return await reconcile_pending(runtime)


@pytest.mark.parametrize("mode", MODES)
async def test_each_upstream_outcome_ends_charged_once_or_released(
    api: SignedClient,
    runtime: Runtime,
    clock: FrozenClock,
    faulty: FaultyProvider,
    creds: Credentials,
    mode: Mode,
) -> None:
    pkg = await package(runtime, "Turkey")
    price = cents(pkg["cost_e4"])
    first, final = EXPECTED[mode]
    faulty.create_mode = mode

    started = time.perf_counter()
    response = await api.post(ORDER, {"packageCode": pkg["code"]})
    elapsed = time.perf_counter() - started

    # A definite failure is a 502 PROVIDER_ERROR that still names the (failed) order.
    assert response.status_code == (502 if first == "failed" else 200), response.text
    body = response.json()
    if first == "failed":
        assert body["code"] == "PROVIDER_ERROR", body
    reference = body["orderReference"]
    assert body["status"] == first, body
    assert body["success"] is (first != "failed")
    assert body["isPending"] is (first == "pending_details")
    held = first == "pending_details"
    charged = first == "completed"
    expected_balance = BALANCE - price if (held or charged) else BALANCE
    assert body["newBalance"] == pytest.approx(expected_balance / 100)
    assert await balance(runtime, creds.account_id) == expected_balance
    assert faulty.create_calls == 1
    assert faulty.upstream_creates == (1 if mode in COMMITTING else 0)
    if mode == "hang":
        assert elapsed < TIMEOUT + 2.0, f"a hanging upstream held the request {elapsed:.2f}s"
    order = await order_by_reference(runtime, reference)
    if held:
        assert order.status == OrderStatus.PENDING
        assert order.failure_reason  # the ambiguity is recorded
        assert await ledger_kinds(runtime, creds.account_id) == ["credit", "reserve"]
    else:
        assert await ledger_kinds(runtime, creds.account_id) == settled_kinds(first)

    # Nothing happens before the reconciliation delay.
    assert await reconcile_pending(runtime) == {}
    counts = await reconcile_later(runtime, clock)
    assert counts == ({final: 1} if held else {})

    order = await order_by_reference(runtime, reference)
    assert order.status == final
    final_balance = BALANCE - price if final == "completed" else BALANCE
    assert await balance(runtime, creds.account_id) == final_balance
    assert await ledger_kinds(runtime, creds.account_id) == settled_kinds(final)
    upstream = await faulty.inner.get_order(reference)
    if final == "completed":
        assert upstream is not None and upstream.state == PurchaseState.COMPLETED
        status = (await api.get(f"{ORDER}?orderReference={reference}")).json()["order"]
        assert [e["iccid"] for e in status["esims"]] == [e.iccid for e in upstream.esims]
        assert len(upstream.esims) == 1
    else:
        assert upstream is None  # the upstream never sold anything under our reference

    # Running the settle job and reconciliation again changes nothing, buys nothing.
    clock.advance(seconds=60)
    await Worker(runtime).run_due()
    assert await reconcile_pending(runtime) == {}
    assert faulty.create_calls == 1
    assert faulty.upstream_creates == (1 if mode in COMMITTING else 0)
    assert await balance(runtime, creds.account_id) == final_balance
    assert await ledger_kinds(runtime, creds.account_id) == settled_kinds(final)
    assert await order_count(runtime) == 1


async def test_unreachable_upstream_during_reconciliation_keeps_the_order_pending(
    api: SignedClient,
    runtime: Runtime,
    clock: FrozenClock,
    faulty: FaultyProvider,
    creds: Credentials,
) -> None:
    pkg = await package(runtime, "Turkey")
    price = cents(pkg["cost_e4"])
    faulty.create_mode = "timeout_after_commit"
    reference = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()["orderReference"]
    faulty.get_mode = "http_5xx"
    assert await reconcile_later(runtime, clock) == {"unreachable": 1}
    assert (await order_by_reference(runtime, reference)).status == OrderStatus.PENDING
    assert await balance(runtime, creds.account_id) == BALANCE - price
    faulty.get_mode = "ok"
    assert await reconcile_pending(runtime) == {"completed": 1}
    assert await balance(runtime, creds.account_id) == BALANCE - price
    assert await ledger_kinds(runtime, creds.account_id) == settled_kinds("completed")
    assert faulty.upstream_creates == 1
    assert faulty.get_calls == 3 + 1  # the failing pass retries the read twice; then one


async def _reserved_order(runtime: Runtime, creds: Credentials, code: str) -> Order:
    """The state a crash right after the reserve transaction leaves behind."""
    body = parse_order(json.dumps({"packageCode": code}).encode(), None)
    order_id, _route = await service._reserve(runtime, creds.account_id, body)
    async with runtime.sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None and order.status == OrderStatus.PENDING
        session.expunge(order)
        return order


@pytest.mark.parametrize("upstream_bought", [False, True])
async def test_crash_between_reserve_and_upstream_call(
    runtime: Runtime,
    clock: FrozenClock,
    faulty: FaultyProvider,
    creds: Credentials,
    upstream_bought: bool,
) -> None:
    pkg = await package(runtime, "Turkey")
    price = cents(pkg["cost_e4"])
    order = await _reserved_order(runtime, creds, pkg["code"])
    assert await balance(runtime, creds.account_id) == BALANCE - price
    if upstream_bought:  # the call reached the upstream, then the worker died
        await faulty.inner.create_order(
            OrderRequest(reference=order.reference, provider_code=order.provider_code, quantity=1)
        )
    final = "completed" if upstream_bought else "failed"
    assert await reconcile_later(runtime, clock) == {final: 1}
    assert (await order_by_reference(runtime, order.reference)).status == final
    expected = BALANCE - price if upstream_bought else BALANCE
    assert await balance(runtime, creds.account_id) == expected
    assert await ledger_kinds(runtime, creds.account_id) == settled_kinds(final)
    assert faulty.create_calls == 0  # reconciliation only asks, it never buys
    assert faulty.get_calls == 1
    async with runtime.sessions() as session:
        reservations = await session.scalar(select(func.count()).select_from(Reservation))
    assert reservations == 1


async def test_request_crashing_after_reserve_is_reconciled(
    api: SignedClient,
    runtime: Runtime,
    clock: FrozenClock,
    faulty: FaultyProvider,
    creds: Credentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A BaseException (worker killed) escapes between reserve and the upstream call."""

    class Killed(BaseException):
        pass

    async def killed(*_args: Any, **_kwargs: Any) -> Any:
        raise Killed()

    monkeypatch.setattr(service, "_call_upstream", killed)
    pkg = await package(runtime, "Turkey")
    price = cents(pkg["cost_e4"])
    with pytest.raises(Killed):
        await api.post(ORDER, {"packageCode": pkg["code"]})
    assert await balance(runtime, creds.account_id) == BALANCE - price
    assert await order_count(runtime) == 1
    monkeypatch.undo()
    assert await reconcile_later(runtime, clock) == {"failed": 1}
    assert await balance(runtime, creds.account_id) == BALANCE
    assert await ledger_kinds(runtime, creds.account_id) == settled_kinds("failed")
    assert faulty.create_calls == 0
