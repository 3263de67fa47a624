"""Provider kinds → adapter factories, and one adapter instance per configured account."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from aiolimiter import AsyncLimiter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from esimgate.clock import Clock
from esimgate.providers.base import Provider
from esimgate.providers.models import ProviderAccount
from esimgate.providers.resilience import CircuitBreaker
from esimgate.secretbox import SecretBox


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    """What an adapter factory gets: decrypted credentials stay in memory only."""

    name: str
    base_url: str | None
    credentials: dict[str, str]
    clock: Clock
    sessions: async_sessionmaker[AsyncSession]  # for adapters that keep state (the simulator)


AdapterFactory = Callable[[AdapterConfig], Provider]


def _simulator(config: AdapterConfig) -> Provider:
    from esimgate.providers.simulator.adapter import SimulatorProvider

    return SimulatorProvider.from_config(config)


def _lazy(module: str, name: str) -> AdapterFactory:
    """A factory that imports its adapter only when an account of that kind is used."""

    def build(config: AdapterConfig) -> Provider:
        from importlib import import_module

        adapter_class = getattr(import_module(f"esimgate.providers.{module}.adapter"), name)
        built: Provider = adapter_class.from_config(config)
        return built

    return build


FACTORIES: dict[str, AdapterFactory] = {
    "simulator": _simulator,
    "simplifytrip": _lazy("simplifytrip", "SimplifyTripProvider"),
    "esimaccess": _lazy("esimaccess", "EsimAccessProvider"),
    "airalo": _lazy("airalo", "AiraloProvider"),
    "esimgo": _lazy("esimgo", "EsimGoProvider"),
    "esimfly": _lazy("esimfly", "EsimflyProvider"),
}


class UnknownProviderKind(LookupError):
    """A provider account names a kind this build has no adapter for."""


class ProviderRegistry:
    def __init__(
        self, box: SecretBox, clock: Clock, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.box = box
        self.clock = clock
        self.sessions = sessions
        self.factories = dict(FACTORIES)
        self._adapters: dict[int, Provider] = {}
        self._limiters: dict[int, AsyncLimiter] = {}
        self._breakers: dict[int, CircuitBreaker] = {}

    def adapter(self, account: ProviderAccount) -> Provider:
        """The adapter for a provider account (built once per process)."""
        existing = self._adapters.get(account.id)
        if existing is not None:
            return existing
        factory = self.factories.get(account.kind)
        if factory is None:
            raise UnknownProviderKind(f"no adapter for provider kind {account.kind!r}")
        credentials: dict[str, str] = {}
        if account.credentials_encrypted:
            credentials = json.loads(self.box.decrypt(account.credentials_encrypted))
        adapter = factory(
            AdapterConfig(account.name, account.base_url, credentials, self.clock, self.sessions)
        )
        self._adapters[account.id] = adapter
        return adapter

    def limiter(self, account: ProviderAccount) -> AsyncLimiter:
        """This process's token bucket for the account, at the upstream's published rate."""
        limiter = self._limiters.get(account.id)
        if limiter is None:
            rate = self.adapter(account).requests_per_second
            # A bucket of one second's worth: bursts never exceed the published rate.
            limiter = AsyncLimiter(max_rate=max(1.0, rate), time_period=1.0)
            self._limiters[account.id] = limiter
        return limiter

    def breaker(self, account_id: int) -> CircuitBreaker:
        """This process's circuit breaker for the account."""
        return self._breakers.setdefault(account_id, CircuitBreaker())

    def override(self, account_id: int, adapter: Provider) -> None:
        """Use a given adapter for an account (fault-injecting wrappers, tests)."""
        self._adapters[account_id] = adapter

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            close = getattr(adapter, "aclose", None)
            if close is not None:
                await close()
        self._adapters.clear()
