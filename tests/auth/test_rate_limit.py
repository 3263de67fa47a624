"""Per-key rate limits through HTTP: exact admission, the X-RateLimit-* headers, Retry-After,
fixed epoch-aligned hourly windows, independence of keys, and exactness under concurrency and
across two server instances."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from esimgate.app import create_app
from esimgate.auth.keys import issue_key
from esimgate.clock import FrozenClock
from esimgate.runtime import Runtime, build_runtime
from tests.auth.helpers import (
    BALANCE,
    TOKEN,
    OverlappingGate,
    RacyCounterGate,
    describe,
    expect_error,
    expect_ok,
    gather_responses,
    get_balance,
    iso_z,
    next_hour,
    now_ms,
    remaining,
    seconds_until,
    set_key_limit,
    signed_headers,
    use_gate,
)
from tests.conftest import MakeAccount
from tests.support import Credentials

# A fixed, reproducible instant: 25 min 3.75 s before the window ends at 13:00:00Z.
T0 = datetime(2031, 3, 4, 12, 34, 56, 250_000, tzinfo=UTC)


def quota_of(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    h = response.headers
    return h.get("X-RateLimit-Limit"), h.get("X-RateLimit-Remaining"), h.get("X-RateLimit-Reset")


async def hmac_get(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> httpx.Response:
    return await get_balance(client, signed_headers(creds, now_ms(clock)))


async def bearer_token(client: httpx.AsyncClient, creds: Credentials) -> str:
    response = await client.post(
        TOKEN, json={"accessCode": creds.access_code, "secretKey": creds.secret_key}
    )
    return str(expect_ok(response)["data"]["accessToken"])


def expect_over_limit(response: httpx.Response, limit: int, now: datetime) -> None:
    expect_error(response, 429, "RATE_LIMIT_EXCEEDED")
    reset = next_hour(now)
    assert quota_of(response) == (str(limit), "0", iso_z(reset)), describe(response)
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), describe(response)
    assert int(retry_after) == seconds_until(reset, now), describe(response)


# --- exact admission and headers ------------------------------------------------------------


async def test_exactly_the_keys_limit_is_admitted_in_a_window(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, runtime: Runtime
) -> None:
    clock.set(T0)
    await set_key_limit(runtime, creds.access_code, 25)
    for n in range(25):
        response = await hmac_get(client, creds, clock)
        expect_ok(response)
        assert quota_of(response) == ("25", str(24 - n), "2031-03-04T13:00:00Z"), describe(response)
        clock.advance(seconds=1)
    for _ in range(3):  # refusals are not counted, and keep saying so
        response = await hmac_get(client, creds, clock)
        expect_over_limit(response, 25, clock.now())
    assert response.headers["Retry-After"] == str(1504 - 25), describe(response)


@pytest.mark.parametrize(
    ("moment", "retry_after"),
    [
        (datetime(2031, 3, 4, 12, 0, 0, tzinfo=UTC), 3600),
        (datetime(2031, 3, 4, 12, 0, 0, 1_000, tzinfo=UTC), 3600),  # 3599.999 s → 3600
        (datetime(2031, 3, 4, 12, 34, 56, 250_000, tzinfo=UTC), 1504),
        (datetime(2031, 3, 4, 12, 59, 59, tzinfo=UTC), 1),
        (datetime(2031, 3, 4, 12, 59, 59, 999_000, tzinfo=UTC), 1),
        (datetime(2031, 12, 31, 23, 30, 0, tzinfo=UTC), 1800),  # the window ends next year
    ],
)
async def test_retry_after_is_the_whole_seconds_until_the_window_resets(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    runtime: Runtime,
    moment: datetime,
    retry_after: int,
) -> None:
    clock.set(moment)
    await set_key_limit(runtime, creds.access_code, 1)
    expect_ok(await hmac_get(client, creds, clock))
    response = await hmac_get(client, creds, clock)
    expect_over_limit(response, 1, moment)
    assert response.headers["Retry-After"] == str(retry_after), describe(response)


async def test_the_next_window_starts_afresh(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, runtime: Runtime
) -> None:
    clock.set(T0)
    await set_key_limit(runtime, creds.access_code, 3)
    for _ in range(3):
        expect_ok(await hmac_get(client, creds, clock))
    clock.set(datetime(2031, 3, 4, 12, 59, 59, 999_000, tzinfo=UTC))
    expect_over_limit(await hmac_get(client, creds, clock), 3, clock.now())

    clock.set(datetime(2031, 3, 4, 13, 0, 0, tzinfo=UTC))  # the boundary belongs to the new window
    for n in range(3):
        response = await hmac_get(client, creds, clock)
        expect_ok(response)
        assert quota_of(response) == ("3", str(2 - n), "2031-03-04T14:00:00Z"), describe(response)
    expect_over_limit(await hmac_get(client, creds, clock), 3, clock.now())

    clock.advance(hours=5)  # windows that saw no traffic do not matter
    response = await hmac_get(client, creds, clock)
    expect_ok(response)
    assert quota_of(response) == ("3", "2", "2031-03-04T19:00:00Z"), describe(response)


async def test_quota_headers_on_errors_after_authentication(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, runtime: Runtime
) -> None:
    clock.set(T0)
    await set_key_limit(runtime, creds.access_code, 3)
    headers = signed_headers(creds, now_ms(clock))
    response = await get_balance(client, headers)
    expect_ok(response)
    assert quota_of(response) == ("3", "2", "2031-03-04T13:00:00Z"), describe(response)

    response = await get_balance(client, headers)  # a replay is validly signed: it is counted
    expect_error(response, 409, "DUPLICATE_REQUEST")
    assert quota_of(response) == ("3", "1", "2031-03-04T13:00:00Z"), describe(response)

    expect_ok(await hmac_get(client, creds, clock))
    response = await get_balance(client, headers)  # over the limit: 429 before the replay check
    expect_over_limit(response, 3, clock.now())


async def test_quota_headers_are_absent_before_authentication(client: httpx.AsyncClient) -> None:
    response = await client.get(BALANCE)
    expect_error(response, 401, "AUTHENTICATION_REQUIRED")
    assert quota_of(response) == (None, None, None), describe(response)


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_per_hour": 7}])
async def test_default_limit_comes_from_settings_and_the_key_row_overrides_it(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    runtime: Runtime,
    make_account: MakeAccount,
) -> None:
    response = await hmac_get(client, creds, clock)
    expect_ok(response)
    assert quota_of(response)[:2] == ("7", "6"), describe(response)
    other = await make_account("globex")
    await set_key_limit(runtime, other.access_code, 2)
    response = await hmac_get(client, other, clock)
    assert quota_of(response)[:2] == ("2", "1"), describe(response)


async def test_keys_are_independent(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    runtime: Runtime,
    make_account: MakeAccount,
) -> None:
    other_account = await make_account("globex")
    async with runtime.sessions() as session, session.begin():  # a second key of the same account
        issued = await issue_key(session, runtime.clock, runtime.box, creds.account_id)
    second_key = Credentials(creds.account_id, issued.key.access_code, issued.secret_key)

    await set_key_limit(runtime, creds.access_code, 2)
    for _ in range(2):
        expect_ok(await hmac_get(client, creds, clock))
    expect_over_limit(await hmac_get(client, creds, clock), 2, clock.now())

    for who in (other_account, second_key):
        response = await hmac_get(client, who, clock)
        expect_ok(response)
        assert quota_of(response)[:2] == ("1000", "999"), describe(response)
    expect_over_limit(await hmac_get(client, creds, clock), 2, clock.now())


async def test_bearer_and_hmac_requests_share_the_keys_quota(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, runtime: Runtime
) -> None:
    await set_key_limit(runtime, creds.access_code, 6)
    token = await bearer_token(client, creds)

    async def bearer_get() -> httpx.Response:
        return await client.get(BALANCE, headers={"Authorization": f"Bearer {token}"})

    sends: list[Callable[[], Awaitable[httpx.Response]]] = [
        bearer_get,
        lambda: hmac_get(client, creds, clock),
    ]
    for n in range(6):
        response = await sends[n % 2]()
        expect_ok(response)
        assert remaining(response) == 5 - n, describe(response)
    expect_over_limit(await bearer_get(), 6, clock.now())
    expect_over_limit(await hmac_get(client, creds, clock), 6, clock.now())


# --- exactness under concurrency ------------------------------------------------------------


def check_exact_admission(responses: list[httpx.Response], limit: int) -> None:
    """Exactly ``limit`` admitted, each with its own X-RateLimit-Remaining; the rest 429."""
    statuses = Counter(r.status_code for r in responses)
    expected = Counter({200: limit, 429: len(responses) - limit})
    odd = next((r for r in responses if r.status_code not in (200, 429)), responses[0])
    assert statuses == expected, f"statuses {dict(statuses)}; e.g. {describe(odd)}"
    left = sorted(remaining(r) for r in responses if r.status_code == 200)
    assert left == list(range(limit)), f"X-RateLimit-Remaining of the admitted: {left[:20]}…"
    for response in responses:
        if response.status_code == 429:
            expect_error(response, 429, "RATE_LIMIT_EXCEEDED")
            assert int(response.headers["Retry-After"]) >= 1, describe(response)
            assert remaining(response) == 0, describe(response)


async def _burst(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, count: int
) -> list[httpx.Response]:
    headers = [signed_headers(creds, now_ms(clock)) for _ in range(count)]
    return await gather_responses([get_balance(client, h) for h in headers])


SIZES = [
    pytest.param(10, 15, id="10-of-15"),
    pytest.param(1000, 1200, id="1000-of-1200", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize("gate_kind", ["database", "redis"])
@pytest.mark.parametrize(("limit", "total"), SIZES)
async def test_concurrent_requests_admit_exactly_the_limit(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    gate_kind: str,
    limit: int,
    total: int,
) -> None:
    use_gate(runtime, gate_kind, monkeypatch)
    await set_key_limit(runtime, creds.access_code, limit)
    gate = OverlappingGate(runtime.gate, parties=total)
    monkeypatch.setattr(runtime, "gate", gate)
    responses = await _burst(client, creds, clock, total)
    # Every request reached admission before any was decided, and then all ran at once.
    assert gate.calls == total
    assert gate.max_in_flight == total, f"only {gate.max_in_flight} admissions overlapped"
    check_exact_admission(responses, limit)


@pytest.mark.parametrize("gate_kind", ["database", "redis"])
@pytest.mark.parametrize(("limit", "total"), SIZES)
async def test_exact_admission_check_catches_an_unguarded_counter(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    gate_kind: str,
    limit: int,
    total: int,
) -> None:
    """The check above fails against a counter that reads, then increments without a guard:
    which only over-admits when the requests really overlap."""
    use_gate(runtime, gate_kind, monkeypatch)
    await set_key_limit(runtime, creds.access_code, limit)
    gate = RacyCounterGate(runtime.gate, parties=total, lockstep=True)
    monkeypatch.setattr(runtime, "gate", gate)
    responses = await _burst(client, creds, clock, total)
    with pytest.raises(AssertionError):
        check_exact_admission(responses, limit)
    admitted = sum(r.status_code == 200 for r in responses)
    assert admitted > limit, f"{admitted} admitted; e.g. {describe(responses[0])}"


async def test_unguarded_counter_is_exact_one_by_one(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """... and is only wrong under concurrency (so its failure above proves the overlap)."""
    await set_key_limit(runtime, creds.access_code, 5)
    monkeypatch.setattr(runtime, "gate", RacyCounterGate(runtime.gate, parties=1))
    responses = [await hmac_get(client, creds, clock) for _ in range(8)]
    check_exact_admission(responses, 5)


# --- two server instances -------------------------------------------------------------------


async def test_the_limit_holds_across_two_server_instances(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, runtime: Runtime
) -> None:
    """Two apps with their own runtimes (engines, Redis clients, gates) over the same database
    and Redis, like two server processes."""
    limit = 25
    await set_key_limit(runtime, creds.access_code, limit)
    second = build_runtime(runtime.settings, clock)
    try:
        app = create_app(runtime=second, migrate=False, embedded_worker=False)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://esimgate.test") as other:
            assert second.gate is not runtime.gate
            clients = (client, other)
            # One by one, alternating: each instance sees the other's count.
            for n in range(10):
                response = await hmac_get(clients[n % 2], creds, clock)
                expect_ok(response)
                assert remaining(response) == limit - 1 - n, describe(response)
            # Then 30 at once, spread over both: exactly the 15 left get through.
            headers = [signed_headers(creds, now_ms(clock)) for _ in range(30)]
            responses = await gather_responses(
                [get_balance(clients[n % 2], h) for n, h in enumerate(headers)]
            )
            statuses = Counter(r.status_code for r in responses)
            assert statuses == Counter({200: 15, 429: 15}), (
                f"{dict(statuses)}; e.g. {describe(responses[0])}"
            )
            left = sorted(remaining(r) for r in responses if r.status_code == 200)
            assert left == list(range(15)), left
            for target in clients:
                expect_over_limit(await hmac_get(target, creds, clock), limit, clock.now())
            clock.set(next_hour(clock.now()))
            response = await hmac_get(other, creds, clock)
            expect_ok(response)
            assert remaining(response) == limit - 1, describe(response)
    finally:
        await second.aclose()


async def test_reset_header_is_the_same_instant_on_every_instance(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, runtime: Runtime
) -> None:
    clock.set(T0)
    second = build_runtime(runtime.settings, clock)
    try:
        app = create_app(runtime=second, migrate=False, embedded_worker=False)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://esimgate.test") as other:
            first = await hmac_get(client, creds, clock)
            clock.advance(minutes=20)
            later = await hmac_get(other, creds, clock)
        assert quota_of(first)[2] == quota_of(later)[2] == "2031-03-04T13:00:00Z", (
            describe(first),
            describe(later),
        )
        assert next_hour(T0) - T0 == timedelta(minutes=25, seconds=3, microseconds=750_000)
    finally:
        await second.aclose()
