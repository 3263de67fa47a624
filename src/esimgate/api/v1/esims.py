"""GET /esims and POST /esims/cancel."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from esimgate.api.deps import CallerDep, RuntimeDep, SessionDep, public_base_url
from esimgate.api.errors import documented
from esimgate.api.pagination import PageRequest, page_of_20
from esimgate.api.v1.auth_errors import AUTH_AND_PARAMETER_ERRORS, AUTH_ERROR_TYPES
from esimgate.errors import InvalidParameter
from esimgate.esims.repository import EsimRepository
from esimgate.esims.schemas import esim_json
from esimgate.orders.cancel import cancel_order_esims
from esimgate.orders.errors import (
    AlreadyCancelled,
    EsimNotFound,
    Forbidden,
    MissingIdentifier,
    NotEligible,
)
from esimgate.orders.request import parse_object

router = APIRouter(tags=["eSIMs"])

StatusFilter = Literal["all", "NEW", "ACTIVE", "EXPIRED", "CANCELLED", "DEPLETED", "DELETED"]


@router.get("/esims", responses=AUTH_AND_PARAMETER_ERRORS)
async def list_esims(
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    session: SessionDep,
    page: Annotated[PageRequest, Depends(page_of_20)],
    status: Annotated[StatusFilter, Query(description="Standardised status")] = "all",
    search: Annotated[
        str | None, Query(max_length=100, description="ICCID, package name or package code")
    ] = None,
    include_base64: Annotated[bool, Query(description="Add qr_code_base64")] = False,
) -> dict[str, Any]:
    """The account's eSIMs, newest first, with usage, validity and install payloads."""
    rows, total = await EsimRepository(session).page(
        caller.account_id,
        None if status == "all" else status,
        search.strip() if search else None,
        page.offset,
        page.limit,
    )
    base = public_base_url(request, runtime)
    now = runtime.clock.now()
    return {
        "success": True,
        "data": {
            "esims": [
                esim_json(e, p, base_url=base, now=now, include_base64=include_base64)
                for e, p in rows
            ],
            "pagination": page.envelope(total),
        },
    }


def identifier(data: dict[str, Any]) -> tuple[str | None, int | None]:
    """``iccid`` (a string of digits) or ``esimId`` (an integer) from a body."""
    iccid, esim_id = data.get("iccid"), data.get("esimId")
    if iccid is not None and (not isinstance(iccid, str) or not iccid.isdigit() or len(iccid) > 22):
        raise InvalidParameter("Invalid parameter: iccid", detail="iccid must be a digit string")
    if esim_id is not None and (isinstance(esim_id, bool) or not isinstance(esim_id, int)):
        raise InvalidParameter("Invalid parameter: esimId", detail="esimId must be an integer")
    if not iccid and esim_id is None:
        raise MissingIdentifier()
    return iccid or None, esim_id


ID_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"iccid": {"type": "string"}, "esimId": {"type": "integer"}},
                }
            }
        },
    }
}


@router.post(
    "/esims/cancel",
    openapi_extra=ID_BODY,
    responses=documented(
        *AUTH_ERROR_TYPES,
        InvalidParameter,
        MissingIdentifier,
        AlreadyCancelled,
        NotEligible,
        Forbidden,
        EsimNotFound,
    ),
)
async def cancel(request: Request, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Cancel every unused eSIM of the same order and refund them to the balance."""
    iccid, esim_id = identifier(parse_object(await request.body()))
    return await cancel_order_esims(runtime, caller.account_id, iccid, esim_id)
