"""GET /esims/packages: the catalogue at the caller's prices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from esimgate.api.deps import CallerDep, SessionDep, caller_account
from esimgate.api.pagination import PageRequest, page_of_50
from esimgate.api.text import NO_NUL
from esimgate.api.v1.auth_errors import AUTH_AND_PARAMETER_ERRORS
from esimgate.catalog.schemas import package_json
from esimgate.catalog.service import priced_catalogue
from esimgate.providers.base import PackageKind

router = APIRouter(tags=["Catalogue"])


@router.get("/esims/packages", responses=AUTH_AND_PARAMETER_ERRORS)
async def list_packages(
    caller: CallerDep,
    session: SessionDep,
    page: Annotated[PageRequest, Depends(page_of_50)],
    search: Annotated[
        str | None,
        Query(
            max_length=100, pattern=NO_NUL, description="Country, region or name (case-insensitive)"
        ),
    ] = None,
    type: Annotated[PackageKind | None, Query(description="local, regional or global")] = None,
) -> dict[str, Any]:
    """Packages on sale, with this account's price (upstream cost plus its markup)."""
    account = await caller_account(session, caller)
    rows, total = await priced_catalogue(
        session,
        account,
        search=search.strip() if search else None,
        kind=type.value if type else None,
        topups=False,
        offset=page.offset,
        limit=page.limit,
    )
    return {
        "success": True,
        "data": {
            "packages": [package_json(row, account.currency) for row in rows],
            "pagination": page.envelope(total),
        },
    }
