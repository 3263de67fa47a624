"""Admission of authenticated requests: per-key rate limits, single-use request ids, and the
per-IP throttle on failed authentication.

One interface, two backends: the database (the embedded default; correct across processes that
share it) and Redis (at scale). Both count in fixed windows aligned to the epoch, so
``X-RateLimit-Reset`` is the same instant for every process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from redis.asyncio import Redis
from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from esimgate.auth.models import RateCounter, UsedRequestId

KEY_WINDOW_SECONDS = 3600
IP_WINDOW_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Quota:
    """The state of one rate-limit bucket after a decision."""

    limit: int
    remaining: int
    reset_at: datetime
    allowed: bool

    def retry_after(self, now: datetime) -> int:
        return max(1, int((self.reset_at - now).total_seconds() + 0.999))


@dataclass(frozen=True, slots=True)
class Admission:
    quota: Quota
    duplicate: bool  # the request id was already used (only meaningful when quota.allowed)


class Gate(Protocol):
    async def admit(
        self, bucket: str, limit: int, now: datetime, request_key: tuple[str, str] | None
    ) -> Admission:
        """Count one request against ``bucket``; if admitted, consume the request id."""
        ...

    async def failures_exceeded(self, ip: str, limit: int, now: datetime) -> Quota | None:
        """The IP's failure quota when it is used up, else None (nothing is counted)."""
        ...

    async def record_failure(self, ip: str, now: datetime) -> None: ...

    async def recall(self, access_code: str, request_id: str) -> dict[str, Any] | None:
        """What a consumed request created, if it recorded anything."""
        ...

    async def remember(self, access_code: str, request_id: str, resource: dict[str, Any]) -> None:
        """Note what a consumed request created, for a client that replays it."""
        ...

    async def purge(self, now: datetime) -> int:
        """Drop expired counters and request ids; returns how many rows went."""
        ...


def _window(now: datetime, seconds: int) -> tuple[int, int]:
    start = int(now.timestamp()) // seconds * seconds
    return start, start + seconds


def _reset(end: int) -> datetime:
    return datetime.fromtimestamp(end, UTC)


class DatabaseGate:
    """Counters and request ids as rows; each decision is its own short transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], request_id_ttl: timedelta):
        self.sessions = sessions
        self.request_id_ttl = request_id_ttl

    async def admit(
        self, bucket: str, limit: int, now: datetime, request_key: tuple[str, str] | None
    ) -> Admission:
        start, end = _window(now, KEY_WINDOW_SECONDS)
        async with self.sessions() as session, session.begin():
            count = await self._increment(session, bucket, start, end, limit)
            quota = Quota(
                limit=limit,
                remaining=max(0, limit - (count if count is not None else limit)),
                reset_at=_reset(end),
                allowed=count is not None,
            )
            if count is None or request_key is None:
                return Admission(quota, duplicate=False)
            access_code, request_id = request_key
            inserted = await session.execute(
                self._insert_ignore(UsedRequestId).values(
                    access_code=access_code, request_id=request_id, created_at=now
                )
            )
            return Admission(quota, duplicate=inserted.rowcount == 0)  # type: ignore[attr-defined]

    async def failures_exceeded(self, ip: str, limit: int, now: datetime) -> Quota | None:
        start, end = _window(now, IP_WINDOW_SECONDS)
        async with self.sessions() as session:
            count = await session.scalar(
                select(RateCounter.count).where(
                    RateCounter.bucket == f"authfail:{ip}", RateCounter.window_start == start
                )
            )
        if count is None or count < limit:
            return None
        return Quota(limit=limit, remaining=0, reset_at=_reset(end), allowed=False)

    async def record_failure(self, ip: str, now: datetime) -> None:
        start, end = _window(now, IP_WINDOW_SECONDS)
        async with self.sessions() as session, session.begin():
            await self._increment(session, f"authfail:{ip}", start, end, limit=None)

    async def recall(self, access_code: str, request_id: str) -> dict[str, Any] | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(UsedRequestId.resource).where(
                    UsedRequestId.access_code == access_code,
                    UsedRequestId.request_id == request_id,
                )
            )

    async def remember(self, access_code: str, request_id: str, resource: dict[str, Any]) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(UsedRequestId)
                .where(
                    UsedRequestId.access_code == access_code,
                    UsedRequestId.request_id == request_id,
                )
                .values(resource=resource)
            )

    async def purge(self, now: datetime) -> int:
        async with self.sessions() as session, session.begin():
            ids = await session.execute(
                delete(UsedRequestId).where(UsedRequestId.created_at < now - self.request_id_ttl)
            )
            counters = await session.execute(
                delete(RateCounter).where(RateCounter.window_end < int(now.timestamp()))
            )
        return int(ids.rowcount + counters.rowcount)  # type: ignore[attr-defined]

    async def _increment(
        self, session: AsyncSession, bucket: str, start: int, end: int, limit: int | None
    ) -> int | None:
        """Add one to the bucket unless it is at ``limit``; the new count, or None if full."""
        await session.execute(
            self._insert_ignore(RateCounter).values(
                bucket=bucket, window_start=start, window_end=end, count=0
            )
        )
        guard = RateCounter.bucket == bucket, RateCounter.window_start == start
        statement = update(RateCounter).where(*guard).values(count=RateCounter.count + 1)
        if limit is not None:
            statement = statement.where(RateCounter.count < limit)
        result = await session.execute(statement.returning(RateCounter.count))
        return result.scalar_one_or_none()

    def _insert_ignore(self, table: type[RateCounter] | type[UsedRequestId]) -> Any:
        dialect = self.sessions.kw["bind"].dialect.name
        module = postgresql if dialect == "postgresql" else sqlite
        if dialect not in ("postgresql", "sqlite"):
            return insert(table)
        return module.insert(table).on_conflict_do_nothing()


# KEYS: counter, request id; ARGV: limit, counter ttl, request id ttl.
# Atomic: the count is only raised below the limit, and the id is only taken when admitted.
_ADMIT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  return {count, 0}
end
count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if KEYS[2] == '' then return {count, 1} end
local fresh = redis.call('SET', KEYS[2], '', 'NX', 'EX', ARGV[3])
if fresh then return {count, 1} end
return {count, 2}
"""


class RedisGate:
    """The same decisions in Redis, one Lua script per admission."""

    def __init__(self, redis: Redis, request_id_ttl: timedelta, prefix: str = "esimgate") -> None:
        self.redis = redis
        self.request_id_ttl = request_id_ttl
        self.prefix = prefix
        self._admit = redis.register_script(_ADMIT)

    def _rid(self, access_code: str, request_id: str) -> str:
        return f"{self.prefix}:rid:{access_code}:{request_id}"

    async def admit(
        self, bucket: str, limit: int, now: datetime, request_key: tuple[str, str] | None
    ) -> Admission:
        start, end = _window(now, KEY_WINDOW_SECONDS)
        counter = f"{self.prefix}:rate:{bucket}:{start}"
        rid = self._rid(*request_key) if request_key else ""
        count, verdict = await self._admit(
            keys=[counter, rid],
            args=[limit, KEY_WINDOW_SECONDS + 60, int(self.request_id_ttl.total_seconds())],
        )
        allowed = int(verdict) != 0
        quota = Quota(
            limit=limit,
            remaining=max(0, limit - int(count)) if allowed else 0,
            reset_at=_reset(end),
            allowed=allowed,
        )
        return Admission(quota, duplicate=int(verdict) == 2)

    async def failures_exceeded(self, ip: str, limit: int, now: datetime) -> Quota | None:
        start, end = _window(now, IP_WINDOW_SECONDS)
        raw = await self.redis.get(f"{self.prefix}:authfail:{ip}:{start}")
        if raw is None or int(raw) < limit:
            return None
        return Quota(limit=limit, remaining=0, reset_at=_reset(end), allowed=False)

    async def record_failure(self, ip: str, now: datetime) -> None:
        start, _ = _window(now, IP_WINDOW_SECONDS)
        key = f"{self.prefix}:authfail:{ip}:{start}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, IP_WINDOW_SECONDS + 60)
            await pipe.execute()

    async def recall(self, access_code: str, request_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self._rid(access_code, request_id))
        if not raw:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    async def remember(self, access_code: str, request_id: str, resource: dict[str, Any]) -> None:
        await self.redis.set(
            self._rid(access_code, request_id), json.dumps(resource), xx=True, keepttl=True
        )

    async def purge(self, now: datetime) -> int:
        return 0  # Redis expires keys by itself
