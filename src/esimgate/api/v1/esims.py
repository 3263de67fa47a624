"""GET /esims and POST /esims/cancel."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from esimgate.api.deps import CallerDep, RuntimeDep, SessionDep, public_base_url
from esimgate.api.errors import documented
from esimgate.api.pagination import PageRequest, page_of_20
from esimgate.api.text import NO_NUL
from esimgate.api.v1.auth_errors import AUTH_AND_PARAMETER_ERRORS, AUTH_ERROR_TYPES
from esimgate.catalog.models import CatalogPackage
from esimgate.clock import iso_z
from esimgate.errors import InvalidParameter, ProviderUnavailable, ServiceUnavailable
from esimgate.esims.errors import RefreshFailed
from esimgate.esims.live_schema import live_json
from esimgate.esims.models import Esim
from esimgate.esims.refresh import live
from esimgate.esims.repository import EsimRepository
from esimgate.esims.schemas import data_block, esim_json, validity_block
from esimgate.esims.usage import history
from esimgate.orders.cancel import cancel_order_esims, locate
from esimgate.orders.errors import (
    AlreadyCancelled,
    EsimNotFound,
    Forbidden,
    MissingIdentifier,
    NotEligible,
)
from esimgate.orders.models import Order
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
        str | None,
        Query(max_length=100, pattern=NO_NUL, description="ICCID, package name or package code"),
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


MAX_ID = 2**63 - 1  # ids are 64-bit database integers: a larger one cannot even be looked up


def identifier(data: dict[str, Any]) -> tuple[str | None, int | None]:
    """``iccid`` (a string of digits) or ``esimId`` (an integer) from a body."""
    iccid, esim_id = data.get("iccid"), data.get("esimId")
    if iccid is not None and (not isinstance(iccid, str) or not iccid.isdigit() or len(iccid) > 22):
        raise InvalidParameter("Invalid parameter: iccid", detail="iccid must be a digit string")
    if esim_id is not None and (
        isinstance(esim_id, bool) or not isinstance(esim_id, int) or not 1 <= esim_id <= MAX_ID
    ):
        raise InvalidParameter(
            "Invalid parameter: esimId", detail=f"esimId must be an integer from 1 to {MAX_ID}"
        )
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
                    # null is accepted as "not given" (clients send the unused one as null)
                    "properties": {
                        "iccid": {"type": ["string", "null"]},
                        "esimId": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
                    },
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


@router.get(
    "/esims/usage/query",
    responses=documented(*AUTH_ERROR_TYPES, InvalidParameter, MissingIdentifier, EsimNotFound),
)
async def usage_query(
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    session: SessionDep,
    iccid: Annotated[str | None, Query(max_length=22, pattern=r"^\d+$")] = None,
    order_id: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    from_date: Annotated[date | None, Query(description="YYYY-MM-DD")] = None,
    to_date: Annotated[date | None, Query(description="YYYY-MM-DD")] = None,
) -> dict[str, Any]:
    """Stored usage of one eSIM (never calls the provider), with optional daily history."""
    if iccid is None and order_id is None:
        raise MissingIdentifier("Provide either iccid or order_id")
    if iccid is not None and order_id is not None:
        raise InvalidParameter("Invalid parameter: iccid, order_id", detail="Provide only one")
    repo = EsimRepository(session)
    esim = await (
        repo.owned(caller.account_id, iccid)
        if iccid
        else repo.first_of_order(caller.account_id, order_id or "")
    )
    if esim is None:
        raise EsimNotFound()
    package = await session.get(CatalogPackage, esim.package_id)
    order = await session.get(Order, esim.order_id)
    assert package is not None and order is not None
    now = runtime.clock.now()
    data: dict[str, Any] = {
        "esim": {
            "iccid": esim.iccid,
            "order_id": order.reference,
            "package_name": package.name,
            "status": esim.status,
        },
        "data": data_block(esim),
        "validity": validity_block(esim, now),
        "usage_updated_at": iso_z(esim.usage_updated_at),
    }
    if from_date is not None or to_date is not None:
        first = from_date or esim.created_at.date()
        last = to_date or now.date()
        if first > last or (last - first).days > 366:
            raise InvalidParameter(
                "Invalid parameter: from_date, to_date",
                detail="from_date must not be after to_date, and the range at most 366 days",
            )
        data["usage_history"] = await history(session, esim, first, last)
    return {"success": True, "data": data}


@router.post(
    "/esims/status",
    openapi_extra=ID_BODY,
    responses=documented(
        *AUTH_ERROR_TYPES,
        InvalidParameter,
        MissingIdentifier,
        Forbidden,
        EsimNotFound,
        ProviderUnavailable,
    ),
)
async def live_status(request: Request, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Live state from the network: status, last network, device, dates and usage."""
    iccid, esim_id = identifier(parse_object(await request.body()))
    async with runtime.sessions() as session:
        esim = await locate(session, caller.account_id, iccid, esim_id)
    fresh = await live(runtime, esim.id)
    return {"success": True, "message": "Live eSIM status retrieved", "data": live_json(fresh)}


@router.post(
    "/esims/{iccid}/refresh",
    responses=documented(*AUTH_ERROR_TYPES, EsimNotFound, RefreshFailed, ServiceUnavailable),
)
async def refresh(
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    iccid: Annotated[str, Path(max_length=22, pattern=r"^\d+$")],
) -> dict[str, Any]:
    """Fresh usage from the provider, at most once a minute per eSIM (else the stored data)."""
    async with runtime.sessions() as session:
        esim = await EsimRepository(session).owned(caller.account_id, iccid)
        if esim is None:
            raise EsimNotFound()
    result = await runtime.refresher.refresh(runtime, esim)
    async with runtime.sessions() as session:
        fresh = await session.get(Esim, esim.id)
        package = await session.get(CatalogPackage, esim.package_id)
    assert fresh is not None and package is not None
    meta: dict[str, Any] = {"cached": result.cached, "refreshedAt": iso_z(result.refreshed_at)}
    if result.stale:
        meta["stale"] = True
    base = public_base_url(request, runtime)
    return {
        "success": True,
        "data": esim_json(fresh, package, base_url=base, now=runtime.clock.now()),
        "meta": meta,
    }
