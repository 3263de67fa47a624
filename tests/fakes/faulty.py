"""A provider wrapper that injects upstream faults around the real simulator adapter.

``FaultyProvider(inner)`` implements the provider port by delegating to ``inner``; ``create_order``
and ``get_order`` can be made to fail in the ways a real upstream fails, and every call is counted
so a test can prove that nothing was bought twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

from esimgate.providers.base import (
    CancelResult,
    Capability,
    EsimRef,
    LogicalError,
    LogicalReason,
    OrderRequest,
    Provider,
    ProviderPackage,
    Purchase,
    TechnicalError,
    TopUpRequest,
    TopUpResult,
    UsageReport,
)

Mode = Literal[
    "ok",
    "business_error",
    "unavailable",
    "http_5xx",
    "timeout_after_commit",
    "invalid_json_after_commit",
    "hang",
    "crash_after_commit",
]
MODES: tuple[Mode, ...] = (
    "ok",
    "business_error",
    "unavailable",
    "http_5xx",
    "timeout_after_commit",
    "invalid_json_after_commit",
    "hang",
    "crash_after_commit",
)
# Modes in which the upstream really bought the eSIM before the failure reached us.
COMMITTING: frozenset[Mode] = frozenset(
    {"ok", "timeout_after_commit", "invalid_json_after_commit", "crash_after_commit"}
)


class UpstreamCrash(RuntimeError):
    """An adapter bug after the upstream committed (not a ProviderError)."""


class FaultyProvider:
    """The port, with a programmable fault for ``create_order`` and ``get_order``."""

    def __init__(self, inner: Provider, *, name: str = "faulty") -> None:
        self.inner = inner
        self.name = name
        self.kind: str = inner.kind
        self.capabilities: frozenset[Capability] = inner.capabilities
        self.max_usage_batch: int = inner.max_usage_batch
        self.create_mode: Mode = "ok"
        self.get_mode: Mode = "ok"
        self.create_calls = 0  # every create_order call that reached this provider
        self.upstream_creates = 0  # create_order calls passed on to the real upstream
        self.get_calls = 0
        self.hang_seconds = 3600.0

    async def _fault(self, mode: Mode, call: str) -> None:
        """Raise the fault of a non-committing ``mode`` (``ok`` and committing modes: nothing)."""
        if mode == "business_error":
            raise LogicalError(LogicalReason.OUT_OF_STOCK, "out of stock", provider=self.name)
        if mode == "unavailable":
            raise TechnicalError(f"{call}: connection refused", provider=self.name, committed=False)
        if mode == "http_5xx":
            raise TechnicalError(
                f"{call}: HTTP 502 Bad Gateway", provider=self.name, committed=None
            )
        if mode == "hang":
            await asyncio.sleep(self.hang_seconds)
            raise AssertionError("the caller's timeout should have cancelled the hang")

    async def create_order(self, request: OrderRequest) -> Purchase:
        self.create_calls += 1
        mode = self.create_mode
        if mode not in COMMITTING:
            await self._fault(mode, "create_order")
        self.upstream_creates += 1
        purchase = await self.inner.create_order(request)
        if mode == "timeout_after_commit":
            raise TechnicalError("create_order: read timeout", provider=self.name, committed=None)
        if mode == "invalid_json_after_commit":
            raise TechnicalError("invalid JSON", provider=self.name, committed=None)
        if mode == "crash_after_commit":
            raise UpstreamCrash("adapter crashed after the upstream committed")
        return purchase

    async def get_order(
        self, reference: str, provider_order_id: str | None = None
    ) -> Purchase | None:
        self.get_calls += 1
        mode = self.get_mode
        if mode not in COMMITTING:
            await self._fault(mode, "get_order")
        purchase = await self.inner.get_order(reference, provider_order_id)
        if mode == "timeout_after_commit":
            raise TechnicalError("get_order: read timeout", provider=self.name, committed=None)
        if mode == "invalid_json_after_commit":
            raise TechnicalError("invalid JSON", provider=self.name, committed=None)
        if mode == "crash_after_commit":
            raise UpstreamCrash("adapter crashed while reading the order")
        return purchase

    # --- plain delegation -----------------------------------------------------------------

    async def list_packages(self) -> Sequence[ProviderPackage]:
        return await self.inner.list_packages()

    async def query_usage(self, esims: Sequence[EsimRef]) -> Sequence[UsageReport]:
        return await self.inner.query_usage(esims)

    async def top_up(self, request: TopUpRequest) -> TopUpResult:
        return await self.inner.top_up(request)

    async def cancel(self, esim: EsimRef) -> CancelResult:
        return await self.inner.cancel(esim)
