"""Catalogue jobs."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from esimgate.providers.service import sync_catalogue
from esimgate.worker.jobs import job

if TYPE_CHECKING:
    from esimgate.runtime import Runtime

log = logging.getLogger(__name__)


@job("catalog.sync", every=timedelta(hours=1))
async def sync(runtime: Runtime, _payload: dict[str, Any]) -> None:
    """Refresh the catalogue and cost snapshots from every enabled provider."""
    async with runtime.sessions() as session, session.begin():
        for report in await sync_catalogue(session, runtime.clock, runtime.providers):
            log.info(
                "catalogue sync %s: %d added, %d updated, %d delisted",
                report.provider,
                report.added,
                report.updated,
                report.delisted,
            )
