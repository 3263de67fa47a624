"""Safe-read retries and the circuit breaker, as units."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from esimgate.providers.base import LogicalError, LogicalReason, TechnicalError
from esimgate.providers.resilience import CircuitBreaker, CircuitState, retry_read


async def test_retry_read_backs_off_with_jitter_and_honours_retry_after() -> None:
    slept: list[float] = []
    calls = 0

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TechnicalError("busy", retry_after=2.5)
        if calls == 2:
            raise TechnicalError("5xx")
        return "ok"

    assert await retry_read(flaky, sleep=sleep) == "ok"
    assert slept[0] == 2.5  # the upstream's own Retry-After
    assert 0 <= slept[1] <= 0.4  # jittered, capped exponential backoff


async def test_retry_read_gives_up_and_never_retries_refusals() -> None:
    calls = 0

    async def sleep(seconds: float) -> None:
        return None

    async def down() -> str:
        nonlocal calls
        calls += 1
        raise TechnicalError("down", retry_after=999)

    with pytest.raises(TechnicalError):
        await retry_read(down, attempts=3, sleep=sleep)
    assert calls == 3

    async def refused() -> str:
        nonlocal calls
        calls += 1
        raise LogicalError(LogicalReason.NOT_FOUND, "no")

    calls = 0
    with pytest.raises(LogicalError):
        await retry_read(refused, sleep=sleep)
    assert calls == 1


def test_breaker_opens_after_five_failures_and_probes_once() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    breaker = CircuitBreaker()
    for _ in range(4):
        breaker.failure(now)
    assert breaker.state(now) is CircuitState.CLOSED
    breaker.failure(now)
    assert breaker.state(now) is CircuitState.OPEN and not breaker.allows(now)
    assert breaker.retry_after(now) == 30
    later = now + timedelta(seconds=30)
    assert breaker.allows(later) and not breaker.allows(later)  # one probe at a time
    breaker.failure(later)  # the probe failed: open again
    assert breaker.state(later) is CircuitState.OPEN
    again = later + timedelta(seconds=30)
    assert breaker.allows(again)
    breaker.success()
    assert breaker.state(again) is CircuitState.CLOSED
