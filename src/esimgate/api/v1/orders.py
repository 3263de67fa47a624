"""POST /esims/order and GET /esims/order."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from esimgate.api.deps import CallerDep, RuntimeDep, SessionDep, public_base_url
from esimgate.api.errors import documented
from esimgate.api.v1.auth_errors import AUTH_ERROR_TYPES
from esimgate.errors import InvalidParameter, MissingFields
from esimgate.orders.errors import (
    IdempotencyKeyReused,
    InsufficientBalance,
    InvalidPackage,
    OrderNotFound,
    PriceMismatch,
)
from esimgate.orders.queries import order_status
from esimgate.orders.request import parse_order
from esimgate.orders.service import place_order

router = APIRouter(tags=["Orders"])

ORDER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["packageCode"],
                    "properties": {
                        "packageCode": {"type": "string"},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 10},
                        "price": {"type": "number", "description": "optional price guard"},
                        "callbackUrl": {"type": "string", "format": "uri"},
                        "recurring": {"type": "boolean"},
                        "idempotency_key": {"type": "string", "maxLength": 200},
                        "packageName": {"type": "string", "description": "legacy, ignored"},
                        "duration": {"type": "integer", "description": "legacy, ignored"},
                        "flagUrl": {"type": "string", "description": "legacy, ignored"},
                    },
                }
            }
        },
    }
}


async def kick(request: Request, job_ids: list[int]) -> None:
    worker = getattr(request.app.state, "worker", None)
    if worker is not None and job_ids:
        await worker.kick(job_ids)


@router.post(
    "/esims/order",
    openapi_extra=ORDER_BODY,
    responses=documented(
        *AUTH_ERROR_TYPES,
        MissingFields,
        InvalidParameter,
        InvalidPackage,
        PriceMismatch,
        InsufficientBalance,
        IdempotencyKeyReused,
    ),
)
async def create_order(
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    """Buy 1–10 eSIMs of a package from the prepaid balance."""
    body = parse_order(await request.body(), idempotency_key)
    request_key = (caller.access_code, caller.request_id) if caller.request_id else None
    placed = await place_order(runtime, caller.account_id, body, request_key)
    await kick(request, placed.job_ids)
    return placed.response


@router.get(
    "/esims/order",
    responses=documented(*AUTH_ERROR_TYPES, InvalidParameter, OrderNotFound),
)
async def get_order(
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    session: SessionDep,
    orderReference: Annotated[str, Query(min_length=1, max_length=64)],  # noqa: N803 - wire name
) -> dict[str, Any]:
    """One order's status with all its eSIMs."""
    base = public_base_url(request, runtime)
    order = await order_status(session, caller.account_id, orderReference, base)
    return {"success": True, "order": order}
