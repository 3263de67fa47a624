"""The built-in simulator provider: the embedded default, needing no accounts anywhere."""

from __future__ import annotations

from collections.abc import Sequence

from esimgate.providers.base import (
    CancelResult,
    Capability,
    EsimRef,
    LogicalError,
    LogicalReason,
    OrderRequest,
    ProviderPackage,
    Purchase,
    TopUpRequest,
    TopUpResult,
    UsageReport,
)
from esimgate.providers.simulator.catalogue import build_catalogue


class SimulatorProvider:
    """A seeded, realistic upstream that lives inside esimgate."""

    kind = "simulator"
    capabilities: frozenset[Capability] = frozenset({Capability.CATALOGUE})
    max_usage_batch = 100

    def __init__(self, seed: int = 2026) -> None:
        self.seed = seed
        self._catalogue = build_catalogue(seed)

    async def list_packages(self) -> Sequence[ProviderPackage]:
        return self._catalogue

    def _not_offered(self, capability: Capability) -> LogicalError:
        return LogicalError(
            LogicalReason.NOT_ALLOWED,
            f"the simulator does not offer {capability.value}",
            provider=self.kind,
        )

    async def create_order(self, request: OrderRequest) -> Purchase:
        raise self._not_offered(Capability.ORDER)

    async def get_order(self, reference: str) -> Purchase | None:
        raise self._not_offered(Capability.ORDER_LOOKUP)

    async def query_usage(self, esims: Sequence[EsimRef]) -> Sequence[UsageReport]:
        raise self._not_offered(Capability.USAGE)

    async def top_up(self, request: TopUpRequest) -> TopUpResult:
        raise self._not_offered(Capability.TOPUP)

    async def cancel(self, esim: EsimRef) -> CancelResult:
        raise self._not_offered(Capability.CANCEL)
