"""create_app(): wiring and lifespan (engine, migrations, default provider, embedded worker)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import func, select

from esimgate import __version__
from esimgate.api import health, metrics, qr, v3
from esimgate.api.errors import install_error_handlers
from esimgate.api.quota_headers import QuotaHeaders
from esimgate.api.v1 import (
    account,
    auth,
    catalog,
    esims,
    orders,
    provider_webhooks,
    topups,
    webhooks,
)
from esimgate.catalog.models import CatalogPackage
from esimgate.config import Settings, get_settings
from esimgate.db.migrate import upgrade
from esimgate.providers.service import ensure_default_provider, sync_catalogue
from esimgate.runtime import Runtime, build_runtime
from esimgate.worker.engine import Worker

log = logging.getLogger(__name__)

BUSINESS_PREFIX = "/api/v1/business"


async def prepare(runtime: Runtime) -> None:
    """Schema at head; on a fresh install the simulator and a first catalogue sync."""
    await upgrade(runtime.engine)
    async with runtime.sessions() as session, session.begin():
        await ensure_default_provider(session, runtime.clock)
        if not await session.scalar(select(func.count()).select_from(CatalogPackage)):
            await sync_catalogue(session, runtime.clock, runtime.providers)


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema without its default "422 Validation Error" responses: esimgate
    answers validation errors with 400 INVALID_PARAMETER, documented per operation."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                default = operation.get("responses", {}).get("422", {})
                if default.get("description") == "Validation Error":
                    del operation["responses"]["422"]
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    migrate: bool = True,
    embedded_worker: bool | None = None,
) -> FastAPI:
    """The ASGI app. Tests hand in their own runtime; `serve` builds one from settings."""
    owns_runtime = runtime is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or build_runtime(settings or get_settings())
        app.state.runtime = rt
        if migrate:
            await prepare(rt)
        stop = asyncio.Event()
        worker_task: asyncio.Task[None] | None = None
        run_worker = rt.settings.embedded_worker if embedded_worker is None else embedded_worker
        if run_worker:
            worker = Worker(rt)
            app.state.worker = worker
            worker_task = asyncio.create_task(worker.run_forever(stop))
        try:
            yield
        finally:
            stop.set()
            if worker_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            if owns_runtime:
                await rt.aclose()

    app = FastAPI(
        title="esimgate Business API",
        version=__version__,
        description=(
            "An eSIM reseller gateway. Authenticate every request with the RT-* HMAC "
            "signature or a bearer token; see docs/api.md."
        ),
        lifespan=lifespan,
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_error_handlers(app)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    app.add_middleware(QuotaHeaders)
    app.include_router(health.router)
    app.include_router(qr.router)
    app.include_router(metrics.router)
    app.include_router(v3.router)
    app.include_router(provider_webhooks.router)
    for router in (
        auth.router,
        account.router,
        catalog.router,
        orders.router,
        esims.router,
        topups.router,
        webhooks.router,
    ):
        app.include_router(router, prefix=BUSINESS_PREFIX)
    return app
