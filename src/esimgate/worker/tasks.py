"""Housekeeping jobs that belong to no domain."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from esimgate.worker.jobs import job

if TYPE_CHECKING:
    from esimgate.runtime import Runtime


@job("auth.purge_admission", every=timedelta(hours=1))
async def purge_admission(runtime: Runtime, _payload: dict[str, Any]) -> None:
    """Drop expired rate counters and request ids (kept ≥ 24 h for replay protection)."""
    await runtime.gate.purge(runtime.clock.now())
