"""Webhook jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esimgate.webhooks.service import attempt
from esimgate.worker.jobs import job

if TYPE_CHECKING:
    from esimgate.runtime import Runtime


@job("webhooks.deliver")
async def deliver(runtime: Runtime, payload: dict[str, Any]) -> None:
    """One attempt of one delivery; the next attempt, if any, is scheduled as a new job."""
    await attempt(runtime, int(payload["delivery_id"]))
