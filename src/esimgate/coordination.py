"""Cross-process throttles: "at most once per window" claims, in the database or in Redis.

The window is measured on the application clock (so tests can hold time still), and a claim is
atomic in both backends: a guarded upsert in SQL, a compare-and-set Lua script in Redis.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy import String, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from esimgate.clock import epoch_ms
from esimgate.db.base import Base


class ThrottleClaim(Base):
    __tablename__ = "throttle_claims"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    claimed_at: Mapped[datetime]


class Throttle(Protocol):
    async def claim(self, key: str, window: timedelta, now: datetime) -> bool:
        """True for the first caller of ``key`` in a window of ``window`` since the last claim."""
        ...


class DatabaseThrottle:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def claim(self, key: str, window: timedelta, now: datetime) -> bool:
        async with self.sessions() as session, session.begin():
            dialect = session.get_bind().dialect.name
            module = postgresql if dialect == "postgresql" else sqlite
            inserted = await session.execute(
                module.insert(ThrottleClaim)
                .values(key=key, claimed_at=now)
                .on_conflict_do_nothing()
            )
            if inserted.rowcount == 1:  # type: ignore[attr-defined]
                return True
            moved = await session.execute(
                update(ThrottleClaim)
                .where(ThrottleClaim.key == key, ThrottleClaim.claimed_at <= now - window)
                .values(claimed_at=now)
            )
            return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


# KEYS[1]: the claim; ARGV: now (ms, app clock), window (ms). The stored value is the claim time.
_CLAIM = """
local last = redis.call('GET', KEYS[1])
if last and tonumber(ARGV[1]) - tonumber(last) < tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', math.max(tonumber(ARGV[2]) * 2, 1000))
return 1
"""


class RedisThrottle:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.prefix = prefix
        self._claim = redis.register_script(_CLAIM)

    async def claim(self, key: str, window: timedelta, now: datetime) -> bool:
        window_ms = int(window.total_seconds() * 1000)
        result = await self._claim(
            keys=[f"{self.prefix}:throttle:{key}"], args=[epoch_ms(now), window_ms]
        )
        return int(result) == 1
