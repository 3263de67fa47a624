"""The process's shared resources, built once and handed to the app, the CLI and the worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from esimgate.auth.admission import DatabaseGate, Gate, RedisGate
from esimgate.auth.tokens import TokenIssuer
from esimgate.clock import Clock, SystemClock
from esimgate.config import Settings
from esimgate.coordination import DatabaseThrottle, RedisThrottle, Throttle
from esimgate.db.engine import create_engine, session_factory
from esimgate.providers.registry import ProviderRegistry
from esimgate.secretbox import SecretBox

if TYPE_CHECKING:
    from esimgate.esims.refresh import Refresher


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    box: SecretBox
    gate: Gate
    tokens: TokenIssuer
    providers: ProviderRegistry
    throttle: Throttle
    redis: Redis | None = None
    # Per-process state: concurrent refreshes of one eSIM share one upstream call.
    refresher: Refresher = field(default_factory=lambda: _refresher())

    async def aclose(self) -> None:
        await self.providers.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


def _refresher() -> Refresher:
    from esimgate.esims.refresh import Refresher

    return Refresher()


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    """Wire everything from settings; nothing here touches the network yet."""
    clock = clock or SystemClock()
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    box = SecretBox.from_settings(settings)
    ttl = timedelta(hours=settings.request_id_ttl_hours)
    throttle: Throttle
    redis: Redis | None = None
    gate: Gate
    if settings.redis_url:
        # Blocking pool: past max_connections a call waits for a free connection instead of
        # failing with MaxConnectionsError (a 500 under a burst of concurrent requests).
        redis = Redis.from_pool(BlockingConnectionPool.from_url(settings.redis_url))
        gate = RedisGate(redis, ttl, prefix=settings.redis_prefix)
        throttle = RedisThrottle(redis, settings.redis_prefix)
    else:
        gate = DatabaseGate(sessions, ttl)
        throttle = DatabaseThrottle(sessions)
    tokens = TokenIssuer(
        box.token_key,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl=timedelta(seconds=settings.token_ttl_seconds),
    )
    providers = ProviderRegistry(box=box, clock=clock, sessions=sessions)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        clock=clock,
        box=box,
        gate=gate,
        tokens=tokens,
        providers=providers,
        throttle=throttle,
        redis=redis,
    )
