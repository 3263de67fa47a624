"""POST /esims/order and GET /esims/order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from esimgate.api.deps import CallerDep, RuntimeDep, SessionDep, caller_account, public_base_url
from esimgate.api.errors import documented
from esimgate.api.pagination import PageRequest, page_of_20
from esimgate.api.text import NO_NUL
from esimgate.api.v1.auth_errors import AUTH_ERROR_TYPES
from esimgate.errors import InvalidParameter, MissingFields, ProviderUnavailable
from esimgate.money import render
from esimgate.orders.errors import (
    IdempotencyKeyReused,
    InsufficientBalance,
    InvalidPackage,
    OrderNotFound,
    PriceMismatch,
)
from esimgate.orders.queries import order_row, order_status
from esimgate.orders.repository import OrderFilter, order_page
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
    response_model=None,
    responses=documented(
        *AUTH_ERROR_TYPES,
        MissingFields,
        InvalidParameter,
        InvalidPackage,
        PriceMismatch,
        InsufficientBalance,
        IdempotencyKeyReused,
        ProviderUnavailable,
    ),
)
async def create_order(
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", pattern=NO_NUL)] = None,
) -> dict[str, Any] | JSONResponse:
    """Buy 1–10 eSIMs of a package from the prepaid balance."""
    body = parse_order(await request.body(), idempotency_key)
    request_key = (caller.access_code, caller.request_id) if caller.request_id else None
    placed = await place_order(
        runtime, caller.account_id, body, request_key, api_key_id=caller.api_key_id
    )
    await kick(request, placed.job_ids)
    return failed_as_502(placed.response)


def failed_as_502(response: dict[str, Any]) -> dict[str, Any] | JSONResponse:
    """A purchase the upstream definitely refused is an error (nothing was charged), but the
    body still names the failed order so the client can look it up."""
    if response.get("status") != "failed":
        return response
    error = ProviderUnavailable(detail=response.get("message"))
    return JSONResponse({**response, **error.body()}, status_code=error.status)


@router.get(
    "/esims/order",
    responses=documented(*AUTH_ERROR_TYPES, InvalidParameter, OrderNotFound),
)
async def get_order(
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    session: SessionDep,
    orderReference: Annotated[str, Query(min_length=1, max_length=64, pattern=NO_NUL)],  # noqa: N803 - wire name
) -> dict[str, Any]:
    """One order's status with all its eSIMs."""
    base = public_base_url(request, runtime)
    order = await order_status(session, caller.account_id, orderReference, base)
    return {"success": True, "order": order}


OrderStatusFilter = Literal["all", "pending", "completed", "failed", "cancelled"]


def _moment(name: str, value: str | None, *, end: bool) -> datetime | None:
    """ISO 8601 date or date-time (UTC unless it says otherwise); a bare ``to_date`` day
    includes that whole day."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(
            f"Invalid parameter: {name}", detail=f"{name} must be an ISO 8601 date"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/orders", responses=documented(*AUTH_ERROR_TYPES, InvalidParameter))
async def list_orders(
    caller: CallerDep,
    session: SessionDep,
    page: Annotated[PageRequest, Depends(page_of_20)],
    status: Annotated[OrderStatusFilter, Query()] = "all",
    from_date: Annotated[str | None, Query(max_length=40)] = None,
    to_date: Annotated[str | None, Query(max_length=40)] = None,
    search: Annotated[
        str | None,
        Query(max_length=100, pattern=NO_NUL, description="Order reference, package name or code"),
    ] = None,
    sort_by: Annotated[Literal["created_at", "amount", "status"], Query()] = "created_at",
    sort_order: Annotated[Literal["asc", "desc"], Query()] = "desc",
) -> dict[str, Any]:
    """Order and top-up history with filters; the summary covers the whole filtered set."""
    spec = OrderFilter(
        account_id=caller.account_id,
        status=None if status == "all" else status,
        from_date=_moment("from_date", from_date, end=False),
        to_date=_moment("to_date", to_date, end=True),
        search=search.strip() if search else None,
    )
    orders, total, revenue = await order_page(
        session, spec, sort_by, sort_order == "desc", page.offset, page.limit
    )
    account = await caller_account(session, caller)
    return {
        "success": True,
        "data": {
            "orders": [order_row(o) for o in orders],
            "summary": {
                "total_orders": total,
                "total_revenue": render(revenue, account.currency),
            },
            "pagination": page.envelope(total),
        },
    }
