"""A circuit breaker per provider account: after repeated technical failures, orders stop
going to that upstream (before any money moves) until a probe succeeds."""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from esimgate.providers.base import TechnicalError

T = TypeVar("T")


class CircuitState(enum.StrEnum):
    CLOSED = "closed"  # calls flow
    OPEN = "open"  # calls refused until the cool-down ends
    HALF_OPEN = "half_open"  # one probe call allowed


@dataclass
class CircuitBreaker:
    """Per process; state is cheap to rebuild, so it is not shared between processes."""

    failure_threshold: int = 5
    cooldown: timedelta = timedelta(seconds=30)
    failures: int = 0
    opened_at: datetime | None = None
    probing: bool = False

    def state(self, now: datetime) -> CircuitState:
        if self.opened_at is None:
            return CircuitState.CLOSED
        if now - self.opened_at < self.cooldown:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def allows(self, now: datetime) -> bool:
        """May a call go out now? In half-open state only one probe at a time."""
        state = self.state(now)
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def retry_after(self, now: datetime) -> int:
        if self.opened_at is None:
            return 0
        return max(1, int((self.opened_at + self.cooldown - now).total_seconds() + 0.999))

    def success(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def abandon(self) -> None:
        """A call that ended without an outcome (cancelled, or its task killed) taught nothing:
        free the probe slot so the next call may probe, rather than none ever again."""
        self.probing = False

    def failure(self, now: datetime) -> None:
        """A technical failure (the upstream's fault, not a business refusal)."""
        self.failures += 1
        if self.probing or self.failures >= self.failure_threshold:
            self.opened_at = now
        self.probing = False


async def retry_read(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 3,
    base_delay: float = 0.2,
    max_delay: float = 5.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Retry a read (never a create) on technical failures: capped exponential backoff with
    full jitter, or the upstream's own Retry-After when it gave one (also capped)."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except TechnicalError as exc:
            if attempt == attempts:
                raise
            delay = exc.retry_after
            if delay is None:
                delay = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not security
            await sleep(min(max_delay, max(0.0, delay)))
    raise AssertionError("unreachable")
