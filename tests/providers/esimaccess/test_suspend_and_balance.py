"""eSIM Access suspend / unsuspend (§5.5) and balance (§5.7) against the fake upstream.

The fake requires the RT-* HMAC signature on every request here, so each call below is also a
check that the new endpoints are signed like the others."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from esimgate.clock import FrozenClock
from esimgate.esims.models import EsimStatus
from esimgate.esims.status import LineStatus, Normalised, normalise
from esimgate.providers.base import (
    BalanceReader,
    Capability,
    EsimRef,
    LogicalError,
    LogicalReason,
    Money,
    OrderRequest,
    Provider,
    PurchaseState,
    Suspender,
    TechnicalError,
)
from esimgate.providers.esimaccess.adapter import EsimAccessProvider
from esimgate.providers.esimaccess.client import EsimAccessClient
from tests.fakes.esimaccess import FakeState, make_app

BASE = "https://api.esimaccess.test/api/v1/open"
ACCESS, SECRET = "test-access-code", "test-secret-key"
START = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
PRICE = 18000  # CKH002, × 10 000


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def state(clock: FrozenClock) -> FakeState:
    return FakeState(
        access_code=ACCESS,
        secret_key=SECRET,
        require_signature=True,
        allocation_polls=0,
        now=clock.now,
    )


def _over(transport: httpx.AsyncBaseTransport, clock: FrozenClock) -> EsimAccessProvider:
    http = httpx.AsyncClient(transport=transport, base_url=BASE)
    return EsimAccessProvider(EsimAccessClient(http, ACCESS, SECRET, clock=clock), clock=clock)


@pytest.fixture
async def provider(state: FakeState, clock: FrozenClock) -> AsyncIterator[EsimAccessProvider]:
    app, _ = make_app(state)
    adapter = _over(httpx.ASGITransport(app=app), clock)
    yield adapter
    await adapter.aclose()


async def _esims(provider: EsimAccessProvider, reference: str, quantity: int) -> list[EsimRef]:
    purchase = await provider.create_order(OrderRequest(reference, "CKH002", quantity))
    assert purchase.state is PurchaseState.COMPLETED
    return [
        EsimRef(e.iccid, e.provider_esim_id, purchase.provider_order_id) for e in purchase.esims
    ]


async def _status(provider: EsimAccessProvider, ref: EsimRef, clock: FrozenClock) -> Normalised:
    (report,) = await provider.query_usage([ref])
    assert report.esim.provider_esim_id == ref.provider_esim_id
    return normalise(
        "esimaccess",
        report.raw_status,
        used_bytes=report.used_bytes,
        total_bytes=report.total_bytes,
        expires_at=report.expires_at,
        now=clock.now(),
    )


def _assert_signed(state: FakeState, path: str) -> None:
    """Every request to ``path`` carried a valid RT-* signature over its exact body."""
    sent = [(headers, body) for p, headers, body in state.requests if p == path]
    assert sent
    for headers, body in sent:
        message = (
            headers["rt-timestamp"] + headers["rt-requestid"] + ACCESS + body.decode()
        ).encode()
        expected = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
        assert headers["rt-accesscode"] == ACCESS and headers["rt-signature"] == expected


# --- the port ---------------------------------------------------------------------------------


def test_declares_and_implements_suspend_and_balance(provider: EsimAccessProvider) -> None:
    assert isinstance(provider, Provider)
    assert isinstance(provider, Suspender)
    assert isinstance(provider, BalanceReader)
    assert Capability.SUSPEND in provider.capabilities


# --- suspend / resume -------------------------------------------------------------------------


async def test_suspend_then_query_shows_suspended_and_resume_restores(
    provider: EsimAccessProvider, state: FakeState, clock: FrozenClock
) -> None:
    (ref,) = await _esims(provider, "ref-suspend", 1)
    state.set_status(ref.provider_esim_id, "IN_USE", "ENABLED")
    state.set_usage(ref.provider_esim_id, 5 * 1024 * 1024)

    await provider.suspend(ref)
    assert state.esims[ref.provider_esim_id].esim_status == "SUSPENDED"
    (report,) = await provider.query_usage([ref])
    assert dict(report.raw_status) == {"esimStatus": "SUSPENDED", "smdpStatus": "ENABLED"}
    suspended = await _status(provider, ref, clock)
    assert suspended.line is LineStatus.SUSPENDED
    assert suspended.api_status is EsimStatus.ACTIVE  # no API word of its own; it was used

    await provider.resume(ref)
    assert state.esims[ref.provider_esim_id].esim_status == "IN_USE"
    resumed = await _status(provider, ref, clock)
    assert resumed.line is LineStatus.ACTIVE and resumed.api_status is EsimStatus.ACTIVE

    # Exactly the documented bodies, keyed on esimTranNo (ICCIDs are reused), and signed.
    assert state.calls("/esim/suspend") == [{"esimTranNo": ref.provider_esim_id}]
    assert state.calls("/esim/unsuspend") == [{"esimTranNo": ref.provider_esim_id}]
    _assert_signed(state, "/esim/suspend")
    _assert_signed(state, "/esim/unsuspend")


async def test_suspend_a_new_esim_and_resume_to_new(
    provider: EsimAccessProvider, state: FakeState, clock: FrozenClock
) -> None:
    first, second, third = await _esims(provider, "ref-suspend-new", 3)
    assert first.iccid == third.iccid  # the fake reuses ICCIDs: the esimTranNo picks the eSIM
    await provider.suspend(third)
    assert state.esims[third.provider_esim_id].esim_status == "SUSPENDED"
    assert state.esims[first.provider_esim_id].esim_status == "GOT_RESOURCE"
    suspended = await _status(provider, third, clock)
    assert suspended.line is LineStatus.SUSPENDED and suspended.api_status is EsimStatus.NEW
    await provider.resume(third)
    assert state.esims[third.provider_esim_id].esim_status == "GOT_RESOURCE"
    restored = await _status(provider, third, clock)
    assert restored.line is LineStatus.NOT_ACTIVE and restored.api_status is EsimStatus.NEW
    # Back to New, so still cancellable for a refund.
    balance = state.balance
    assert (await provider.cancel(third)).cancelled and state.balance == balance + PRICE
    assert second.provider_esim_id != third.provider_esim_id


async def test_suspend_and_resume_are_safe_to_repeat(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    (ref,) = await _esims(provider, "ref-repeat", 1)
    state.set_status(ref.provider_esim_id, "IN_USE", "ENABLED")
    queries = len(state.calls("/esim/query"))

    await provider.suspend(ref)
    await provider.suspend(ref)  # the fake refuses the repeat (200002); the eSIM is suspended
    assert state.esims[ref.provider_esim_id].esim_status == "SUSPENDED"
    assert len(state.calls("/esim/suspend")) == 2
    assert len(state.calls("/esim/query")) == queries + 1  # checked only after the refusal

    await provider.resume(ref)
    await provider.resume(ref)  # refused upstream, but IN_USE and not suspended: nothing to do
    assert state.esims[ref.provider_esim_id].esim_status == "IN_USE"
    assert len(state.calls("/esim/unsuspend")) == 2

    state.set_status(ref.provider_esim_id, "USED_UP", "ENABLED")
    await provider.resume(ref)  # depleted but not suspended: resume has nothing to undo


@pytest.mark.parametrize("status", ["CANCEL", "USED_EXPIRED", "UNUSED_EXPIRED", "REVOKED"])
async def test_state_not_allowed(
    provider: EsimAccessProvider, state: FakeState, status: str
) -> None:
    (ref,) = await _esims(provider, f"ref-{status}", 1)
    state.set_status(ref.provider_esim_id, status, "RELEASED")
    for operation in (provider.suspend, provider.resume):
        with pytest.raises(LogicalError) as caught:
            await operation(ref)
        assert caught.value.reason is LogicalReason.NOT_ALLOWED
        assert caught.value.upstream_code == "200002" and caught.value.provider == "esimaccess"
    assert state.esims[ref.provider_esim_id].esim_status == status


async def test_suspending_a_cancelled_esim_is_not_allowed(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    (ref,) = await _esims(provider, "ref-cancelled", 1)
    assert (await provider.cancel(ref)).cancelled
    with pytest.raises(LogicalError) as caught:
        await provider.suspend(ref)
    assert caught.value.reason is LogicalReason.NOT_ALLOWED
    assert state.esims[ref.provider_esim_id].esim_status == "CANCEL"


async def test_unknown_esim_is_not_found(provider: EsimAccessProvider, state: FakeState) -> None:
    ghost = EsimRef("8943108170000775671", "26999999999999")
    for operation in (provider.suspend, provider.resume):
        with pytest.raises(LogicalError) as caught:
            await operation(ghost)
        assert caught.value.reason is LogicalReason.NOT_FOUND
        assert caught.value.upstream_code == "310403"


async def test_without_esim_tran_no_nothing_is_sent(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    for operation in (provider.suspend, provider.resume):
        with pytest.raises(LogicalError) as caught:
            await operation(EsimRef("8943108170000775671", ""))
        assert caught.value.reason is LogicalReason.REJECTED
    assert state.requests == []


async def test_wrong_signature_suspends_nothing(state: FakeState, clock: FrozenClock) -> None:
    app, _ = make_app(state)
    good = _over(httpx.ASGITransport(app=app), clock)
    (ref,) = await _esims(good, "ref-bad-sig", 1)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    bad = EsimAccessProvider(EsimAccessClient(http, ACCESS, "wrong", clock=clock), clock=clock)
    with pytest.raises(TechnicalError) as caught:
        await bad.suspend(ref)
    assert caught.value.committed is False
    with pytest.raises(TechnicalError):
        await bad.balance()
    assert state.esims[ref.provider_esim_id].esim_status == "GOT_RESOURCE"
    await bad.aclose()
    await good.aclose()


# --- balance ----------------------------------------------------------------------------------


@pytest.mark.parametrize("quirky", [True, False])  # balance as a numeric string, or a number
async def test_balance_is_exact_and_follows_orders(
    provider: EsimAccessProvider, state: FakeState, quirky: bool
) -> None:
    state.quirky = quirky
    assert await provider.balance() == Money(10_000_000, "USD")  # 1000.00 USD
    state.balance = 940000  # the §5.7 example: 94.00 USD
    assert await provider.balance() == Money(940000, "USD")
    state.balance = 10_000_000 - 1  # 999.9999: no rounding anywhere
    assert await provider.balance() == Money(9_999_999, "USD")

    state.balance = 10_000_000
    (ref,) = await _esims(provider, "ref-balance", 1)
    assert await provider.balance() == Money(10_000_000 - PRICE, "USD")
    await _esims(provider, "ref-balance-2", 2)
    assert await provider.balance() == Money(10_000_000 - 3 * PRICE, "USD")
    assert (await provider.cancel(ref)).cancelled  # refunded in full
    assert await provider.balance() == Money(10_000_000 - 2 * PRICE, "USD")

    bodies = [body for path, _, body in state.requests if path == "/balance/query"]
    assert bodies and all(body == b"{}" for body in bodies)
    _assert_signed(state, "/balance/query")


async def test_balance_currency_is_the_catalogues(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    for package in state.packages:
        package["currencyCode"] = "EUR"
    assert (await provider.balance()).currency == "USD"  # nothing known yet: USD
    await provider.list_packages()
    assert await provider.balance() == Money(10_000_000, "EUR")


# --- technical failures -----------------------------------------------------------------------


async def _call(provider: EsimAccessProvider, operation: str, ref: EsimRef) -> Any:
    if operation == "balance":
        return await provider.balance()
    return await getattr(provider, operation)(ref)


_PATHS = {"suspend": "/esim/suspend", "resume": "/esim/unsuspend", "balance": "/balance/query"}


@pytest.mark.parametrize("operation", sorted(_PATHS))
@pytest.mark.parametrize("mode", ["http_500", "http_429", "invalid_json", "redirect", "busy"])
async def test_upstream_faults_are_technical(
    provider: EsimAccessProvider, state: FakeState, operation: str, mode: str
) -> None:
    (ref,) = await _esims(provider, f"ref-{operation}-{mode}", 1)
    state.set_status(
        ref.provider_esim_id, "SUSPENDED" if operation == "resume" else "IN_USE", "ENABLED"
    )
    before = state.esims[ref.provider_esim_id].esim_status
    if mode == "busy":
        state.fail(_PATHS[operation], "business", code="900001")
    else:
        state.fail(_PATHS[operation], mode)
    with pytest.raises(TechnicalError) as caught:
        await _call(provider, operation, ref)
    assert caught.value.provider == "esimaccess"
    if mode == "http_429":
        assert caught.value.retry_after == 7.0
    assert state.esims[ref.provider_esim_id].esim_status == before


def _raising(exc: Callable[[httpx.Request], Exception]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc(request)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("operation", sorted(_PATHS))
async def test_timeouts_and_refused_connections_are_technical(
    clock: FrozenClock, operation: str
) -> None:
    ref = EsimRef("8943108170000775671", "26000000000001")
    timed_out = _over(_raising(lambda r: httpx.ReadTimeout("read timed out", request=r)), clock)
    with pytest.raises(TechnicalError) as caught:
        await _call(timed_out, operation, ref)
    assert caught.value.committed is None  # it may have reached the upstream
    await timed_out.aclose()
    refused = _over(_raising(lambda r: httpx.ConnectError("refused", request=r)), clock)
    with pytest.raises(TechnicalError) as caught:
        await _call(refused, operation, ref)
    assert caught.value.committed is False
    await refused.aclose()


async def test_follow_up_query_failure_after_a_refusal_is_technical(
    provider: EsimAccessProvider, state: FakeState
) -> None:
    (ref,) = await _esims(provider, "ref-follow-up", 1)
    await provider.suspend(ref)
    state.fail("/esim/query", "http_500")
    with pytest.raises(TechnicalError):  # refused, and cannot tell whether it is "already done"
        await provider.suspend(ref)


@pytest.mark.parametrize(
    "obj", [{"balance": 94.5}, {"balance": "lots"}, {}, None, {"balance": True}]
)
async def test_malformed_balance_is_technical(clock: FrozenClock, obj: Any) -> None:
    answer = {"success": True, "errorCode": "0", "errorMsg": None, "obj": obj}
    adapter = _over(httpx.MockTransport(lambda r: httpx.Response(200, json=answer)), clock)
    with pytest.raises(TechnicalError):
        await adapter.balance()
    await adapter.aclose()


async def test_balance_from_a_live_shaped_answer(clock: FrozenClock) -> None:
    """The §5.7 verbatim answer, and the same with a decimal-looking integer."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = b'{ "success": true, "errorCode": "0", "errorMsg": null, "obj": { "balance": '
        body += b"940000 } }" if len(seen) == 1 else b"940000.0 } }"
        return httpx.Response(200, content=body)

    adapter = _over(httpx.MockTransport(answer), clock)
    assert await adapter.balance() == Money(940000, "USD")
    assert await adapter.balance() == Money(940000, "USD")
    assert seen[0].method == "POST" and seen[0].url.path == "/api/v1/open/balance/query"
    assert seen[0].content == b"{}"
    await adapter.aclose()
