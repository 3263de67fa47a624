"""Helpers shared by the authentication tests.

Signatures here are computed by hand with ``hmac``/``hashlib``: the tests never sign with
esimgate's own ``sign`` (except the unit test of that function), so a bug there cannot cancel out.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from esimgate.accounts.models import Account
from esimgate.auth.admission import (
    KEY_WINDOW_SECONDS,
    Admission,
    DatabaseGate,
    Gate,
    Quota,
    RedisGate,
)
from esimgate.auth.keys import revoke_key
from esimgate.auth.models import ApiKey, RateCounter, UsedRequestId
from esimgate.clock import FrozenClock, epoch_ms
from esimgate.runtime import Runtime
from tests.conftest import TEST_REDIS_URL
from tests.support import Credentials

BALANCE = "/api/v1/business/balance"
TOKEN = "/api/v1/business/auth/token"
WINDOW_MS = 5 * 60 * 1000  # the contract's ±5 minutes


def hand_sign(secret: str, timestamp: str, request_id: str, access_code: str, body: bytes) -> str:
    """RT-Signature, written from the contract: upper-case hex HMAC-SHA256 of ts+id+code+body."""
    message = timestamp.encode() + request_id.encode() + access_code.encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().upper()


def signed_headers(
    creds: Credentials,
    timestamp_ms: int | str,
    body: bytes = b"",
    *,
    request_id: str | None = None,
) -> dict[str, str]:
    timestamp = str(timestamp_ms)
    rid = request_id if request_id is not None else str(uuid.uuid4())
    return {
        "RT-AccessCode": creds.access_code,
        "RT-RequestID": rid,
        "RT-Timestamp": timestamp,
        "RT-Signature": hand_sign(creds.secret_key, timestamp, rid, creds.access_code, body),
    }


def now_ms(clock: FrozenClock) -> int:
    return epoch_ms(clock.now())


def describe(response: httpx.Response) -> str:
    """Everything needed to understand a failed assertion about a response."""
    quota = {k: v for k, v in response.headers.items() if k.lower().startswith("x-ratelimit")}
    retry = response.headers.get("retry-after")
    return (
        f"{response.request.method} {response.request.url.path} → {response.status_code} "
        f"{response.text[:500]!r} quota={quota} retry-after={retry!r}"
    )


def expect_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the contract's error envelope with this status and code."""
    assert response.status_code == status, f"expected {status} {code}: {describe(response)}"
    assert response.headers.get("content-type", "").startswith("application/json"), describe(
        response
    )
    body = response.json()
    assert isinstance(body, dict), describe(response)
    assert body.get("success") is False, describe(response)
    assert body.get("code") == code, f"expected code {code}: {describe(response)}"
    assert isinstance(body.get("error"), str) and body["error"], describe(response)
    return body


def expect_client_error(response: httpx.Response) -> dict[str, Any]:
    """Any 4xx in the error envelope (used where several codes are defensible)."""
    assert 400 <= response.status_code < 500, f"expected a 4xx: {describe(response)}"
    body = response.json()
    assert isinstance(body, dict), describe(response)
    assert body.get("success") is False, describe(response)
    assert isinstance(body.get("code"), str) and body["code"], describe(response)
    assert isinstance(body.get("error"), str) and body["error"], describe(response)
    return body


def expect_ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, f"expected 200: {describe(response)}"
    body = response.json()
    assert body.get("success") is True, describe(response)
    return body  # type: ignore[no-any-return]


def remaining(response: httpx.Response) -> int:
    value = response.headers.get("X-RateLimit-Remaining")
    assert value is not None, f"no X-RateLimit-Remaining: {describe(response)}"
    return int(value)


async def get_balance(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes = b""
) -> httpx.Response:
    return await client.request("GET", BALANCE, headers=headers, content=body)


async def set_key_limit(runtime: Runtime, access_code: str, limit: int | None) -> None:
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(ApiKey)
            .where(ApiKey.access_code == access_code)
            .values(rate_limit_per_hour=limit)
        )


async def set_account_status(runtime: Runtime, account_id: int, status: str) -> None:
    async with runtime.sessions() as session, session.begin():
        await session.execute(update(Account).where(Account.id == account_id).values(status=status))


async def revoke(runtime: Runtime, access_code: str) -> None:
    async with runtime.sessions() as session, session.begin():
        await revoke_key(session, runtime.clock, access_code)


def next_hour(moment: datetime) -> datetime:
    start = int(moment.timestamp()) // 3600 * 3600
    return datetime.fromtimestamp(start + 3600, UTC)


def iso_z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds, rounded up (a client waiting that long is never early)."""
    delta = moment - now
    whole = delta // timedelta(seconds=1)
    return whole + (1 if delta % timedelta(seconds=1) else 0)


# --- gates: choosing the backend, forcing overlap, and deliberately broken variants ---------


def use_gate(runtime: Runtime, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``runtime.gate`` the database or the Redis implementation."""
    if kind == "redis":
        if not TEST_REDIS_URL:
            pytest.skip("needs Redis: set ESIMGATE_TEST_REDIS_URL")
        assert isinstance(runtime.gate, RedisGate)
        return
    if not isinstance(runtime.gate, DatabaseGate):
        gate = DatabaseGate(
            runtime.sessions, timedelta(hours=runtime.settings.request_id_ttl_hours)
        )
        monkeypatch.setattr(runtime, "gate", gate)


class OverlappingGate:
    """Delegates to a real gate, but every ``admit`` first waits until ``parties`` admissions
    have arrived, so that they then run as overlapping transactions. Records how many ran at
    once."""

    def __init__(self, inner: Gate, parties: int, timeout: float = 30) -> None:
        self.inner = inner
        self.barrier = asyncio.Barrier(parties)
        self.timeout = timeout
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0

    async def admit(
        self, bucket: str, limit: int, now: datetime, request_key: tuple[str, str] | None
    ) -> Admission:
        self.calls += 1
        async with asyncio.timeout(self.timeout):
            await self.barrier.wait()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._admit(bucket, limit, now, request_key)
        finally:
            self.in_flight -= 1

    async def _admit(
        self, bucket: str, limit: int, now: datetime, request_key: tuple[str, str] | None
    ) -> Admission:
        return await self.inner.admit(bucket, limit, now, request_key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RacyRequestIdGate(OverlappingGate):
    """BROKEN on purpose: decides "duplicate" from a read made before the claim (check, then
    act). Correct when requests arrive one by one, wrong when they overlap."""

    async def _admit(
        self, bucket: str, limit: int, now: datetime, request_key: tuple[str, str] | None
    ) -> Admission:
        assert request_key is not None
        seen = await request_id_used(self.inner, *request_key)
        admission = await self.inner.admit(bucket, limit, now, request_key)
        return Admission(admission.quota, duplicate=seen)


class RacyCounterGate(OverlappingGate):
    """BROKEN on purpose: reads the window's count, and if it is below the limit counts the
    request without a guard. Correct one by one, over-admits when requests overlap.

    ``lockstep``: every read completes before any write. Left alone, the read and the write of
    one request often run back to back even when requests overlap (SQLite runs every transaction
    under its write lock, which tends to go to the task that just released it; a connection pool
    smaller than the burst queues the reads and writes of many requests behind each other);
    lockstep imposes the interleaving that concurrent requests can always get on a server."""

    def __init__(self, inner: Gate, parties: int, *, lockstep: bool = False) -> None:
        super().__init__(inner, parties)
        self.lockstep = asyncio.Barrier(parties) if lockstep else None

    async def _admit(
        self, bucket: str, limit: int, now: datetime, request_key: tuple[str, str] | None
    ) -> Admission:
        start = int(now.timestamp()) // KEY_WINDOW_SECONDS * KEY_WINDOW_SECONDS
        reset_at = datetime.fromtimestamp(start + KEY_WINDOW_SECONDS, UTC)
        count = await window_count(self.inner, bucket, start)
        if self.lockstep is not None:
            async with asyncio.timeout(self.timeout):
                await self.lockstep.wait()
        if count >= limit:
            return Admission(Quota(limit, 0, reset_at, allowed=False), duplicate=False)
        unguarded = 10**9
        admission = await self.inner.admit(bucket, unguarded, now, request_key)
        used = unguarded - admission.quota.remaining
        return Admission(
            Quota(limit, max(0, limit - used), reset_at, allowed=True), admission.duplicate
        )


async def request_id_used(gate: Gate, access_code: str, request_id: str) -> bool:
    if isinstance(gate, RedisGate):
        return bool(await gate.redis.exists(gate._rid(access_code, request_id)))
    assert isinstance(gate, DatabaseGate)
    async with gate.sessions() as session:
        found = await session.scalar(
            select(UsedRequestId.request_id).where(
                UsedRequestId.access_code == access_code, UsedRequestId.request_id == request_id
            )
        )
    return found is not None


async def window_count(gate: Gate, bucket: str, start: int) -> int:
    if isinstance(gate, RedisGate):
        raw = await gate.redis.get(f"{gate.prefix}:rate:{bucket}:{start}")
        return int(raw or 0)
    assert isinstance(gate, DatabaseGate)
    async with gate.sessions() as session:
        count = await session.scalar(
            select(RateCounter.count).where(
                RateCounter.bucket == bucket, RateCounter.window_start == start
            )
        )
    return int(count or 0)


async def gather_responses(requests: list[Awaitable[httpx.Response]]) -> list[httpx.Response]:
    """Run requests concurrently; all of them finish before anything is asserted (no request
    is left running into the next test), and an exception the app raised is reported."""
    results = await asyncio.gather(*requests, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} of {len(results)} requests raised, e.g. {errors[0]!r}"
    return [r for r in results if isinstance(r, httpx.Response)]


async def key_bucket(runtime: Runtime, access_code: str) -> str:
    """The admission bucket of an API key."""
    async with runtime.sessions() as session:
        key_id = await session.scalar(select(ApiKey.id).where(ApiKey.access_code == access_code))
    assert key_id is not None, access_code
    return f"key:{key_id}"


async def bucket_count(runtime: Runtime, bucket: str) -> int:
    """Requests counted in the bucket's current window, read without counting one."""
    start = int(runtime.clock.now().timestamp()) // KEY_WINDOW_SECONDS * KEY_WINDOW_SECONDS
    return await window_count(runtime.gate, bucket, start)
