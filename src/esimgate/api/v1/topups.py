"""GET /topup/packages and POST /topup/order."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from esimgate.api.deps import CallerDep, RuntimeDep, SessionDep, caller_account
from esimgate.api.errors import documented
from esimgate.api.pagination import PageRequest, page_of_50
from esimgate.api.v1.auth_errors import AUTH_ERROR_TYPES
from esimgate.api.v1.orders import failed_as_502
from esimgate.errors import InvalidParameter, MissingFields, ProviderUnavailable
from esimgate.orders.errors import (
    EsimNotFound,
    EsimNotToppable,
    InsufficientBalance,
    InvalidTopupPackage,
    PriceMismatch,
    TopupNotSupported,
)
from esimgate.orders.request import parse_object, price_guard, quantity, required_string
from esimgate.orders.topups import (
    TopUpBody,
    compatible_offers,
    owned_esim,
    place_topup,
    topup_json,
)

router = APIRouter(tags=["Top-ups"])


@router.get(
    "/topup/packages",
    responses=documented(*AUTH_ERROR_TYPES, InvalidParameter, EsimNotFound),
)
async def topup_packages(
    caller: CallerDep,
    session: SessionDep,
    iccid: Annotated[str, Query(min_length=1, max_length=22, pattern=r"^\d+$")],
    page: Annotated[PageRequest, Depends(page_of_50)],
) -> dict[str, Any]:
    """Top-ups compatible with one of the account's eSIMs, at the account's prices."""
    account = await caller_account(session, caller)
    esim = await owned_esim(session, caller.account_id, iccid)
    offers = await compatible_offers(session, esim, account.currency)
    chosen = offers[page.offset : page.offset + page.limit]
    return {
        "success": True,
        "data": {
            "packages": [topup_json(p, o, account) for p, o in chosen],
            "pagination": page.envelope(len(offers)),
        },
    }


TOPUP_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["iccid", "packageCode"],
                    "properties": {
                        "iccid": {"type": "string"},
                        "packageCode": {"type": "string"},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 10},
                        "price": {"type": "number"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/topup/order",
    openapi_extra=TOPUP_BODY,
    response_model=None,
    responses=documented(
        *AUTH_ERROR_TYPES,
        MissingFields,
        InvalidParameter,
        EsimNotFound,
        EsimNotToppable,
        InvalidTopupPackage,
        TopupNotSupported,
        InsufficientBalance,
        PriceMismatch,
        ProviderUnavailable,
    ),
)
async def topup_order(
    request: Request, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any] | JSONResponse:
    """Add a top-up package to an eSIM, paid from the balance."""
    data = parse_object(await request.body())
    body = TopUpBody(
        iccid=required_string(data, "iccid", 22),
        package_code=required_string(data, "packageCode"),
        quantity=quantity(data),
        price=price_guard(data),
    )
    return failed_as_502(await place_topup(runtime, caller.account_id, body))
