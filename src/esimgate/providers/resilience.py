"""A circuit breaker per provider account: after repeated technical failures, orders stop
going to that upstream (before any money moves) until a probe succeeds."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


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

    def failure(self, now: datetime) -> None:
        """A technical failure (the upstream's fault, not a business refusal)."""
        self.failures += 1
        if self.probing or self.failures >= self.failure_threshold:
            self.opened_at = now
        self.probing = False
