"""The seed-000 v3 eSIM dialect, for clients written against that retired API.

Same accounts, keys, stored data and refresh machinery as v1; only the shapes differ:
``{success, status, message, data, meta{requestId, timestamp}}``.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.api.deps import CallerDep, RuntimeDep, public_base_url
from esimgate.api.errors import documented
from esimgate.api.v1.auth_errors import AUTH_ERROR_TYPES
from esimgate.auth.authenticate import exchange_credentials
from esimgate.auth.errors import InvalidApiKey, InvalidUser
from esimgate.catalog.models import CatalogPackage
from esimgate.clock import iso_z
from esimgate.errors import ApiError, InvalidParameter, RateLimitExceeded, ServiceUnavailable
from esimgate.esims.errors import RefreshFailed
from esimgate.esims.install import apple_install_url
from esimgate.esims.models import Esim
from esimgate.esims.presenter import qr_url
from esimgate.esims.repository import EsimRepository
from esimgate.esims.schemas import data_block
from esimgate.esims.status import v3_status
from esimgate.orders.errors import EsimNotFound

router = APIRouter(prefix="/api/v3", tags=["v3 dialect"])

ESIM_ID_PREFIX = "ESIM-"


def envelope(data: Any, message: str, now: datetime, status: int = 200) -> dict[str, Any]:
    return {
        "success": True,
        "status": status,
        "message": message,
        "data": data,
        "meta": {"requestId": "req_" + secrets.token_hex(6), "timestamp": iso_z(now)},
    }


def v3_error_body(code: str, message: str, status: int, now: datetime) -> dict[str, Any]:
    return {
        "success": False,
        "status": status,
        "message": message,
        "code": code,
        "error": {"code": code, "message": message},
        "meta": {"requestId": "req_" + secrets.token_hex(6), "timestamp": iso_z(now)},
    }


class V3Error(BaseModel):
    code: str
    message: str


class V3Meta(BaseModel):
    requestId: str  # noqa: N815 - wire name
    timestamp: str


class V3ErrorBody(BaseModel):
    """The v3 dialect's error envelope (``v3_error_body``)."""

    success: bool = False
    status: int
    message: str
    code: str
    error: V3Error
    meta: V3Meta


def _v3_example(error: type[ApiError]) -> dict[str, Any]:
    return {
        "success": False,
        "status": error.status,
        "message": error.default_message,
        "code": error.code,
        "error": {"code": error.code, "message": error.default_message},
        "meta": {"requestId": "req_5f1c0a9e2b7d", "timestamp": "2025-01-01T00:00:00Z"},
    }


def v3_documented(*errors: type[ApiError]) -> dict[int | str, dict[str, Any]]:
    return documented(*errors, model=V3ErrorBody, example=_v3_example)


class TokenRequest(BaseModel):
    appId: str = Field(min_length=1, max_length=256)  # noqa: N815 - wire name
    secretKey: str = Field(min_length=1, max_length=512)  # noqa: N815 - wire name
    grantType: Literal["client_credentials"] = "client_credentials"  # noqa: N815 - wire name


@router.post(
    "/auth/token",
    responses=v3_documented(InvalidParameter, InvalidApiKey, InvalidUser, RateLimitExceeded),
)
async def token(body: TokenRequest, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Exchange an app id (access code) and secret key for a bearer token."""
    token = await exchange_credentials(
        request, body.appId, body.secretKey, wrong="Invalid app id or secret key"
    )
    now = runtime.clock.now()
    data = {
        "accessToken": token,
        "tokenType": "Bearer",
        "expiresIn": runtime.settings.token_ttl_seconds,
    }
    return envelope(data, "Token issued", now)


async def find(session: AsyncSession, account_id: int, ref: str) -> Esim:
    """``{iccid}`` is an ICCID, or the eSIM id (``ESIM-00000042`` or plain ``42``)."""
    repo = EsimRepository(session)
    esim: Esim | None = None
    digits = ref.removeprefix(ESIM_ID_PREFIX)
    if ref.startswith(ESIM_ID_PREFIX) or len(digits) < 12:
        if digits.isdigit():
            found = await repo.find(esim_id=int(digits))
            esim = found if found is not None and found.account_id == account_id else None
    elif ref.isdigit():
        esim = await repo.owned(account_id, ref)
    if esim is None:
        raise EsimNotFound("eSIM not found", detail="eSIM doesn't exist or not owned by you")
    return esim


def v3_json(esim: Esim, package: CatalogPackage, base_url: str, now: datetime) -> dict[str, Any]:
    usage = data_block(esim)
    days_remaining = None
    if esim.expires_at is not None:
        days_remaining = max(0, (esim.expires_at - now).days)
    return {
        "esimId": f"{ESIM_ID_PREFIX}{esim.id:08d}",
        "iccid": esim.iccid,
        "status": v3_status(esim.status, esim.profile_status, esim.used_bytes),
        "package": {
            "id": package.code,
            "name": package.name,
            "destination": package.region,
            "dataGb": usage["total_mb"] / 1024 if usage["total_mb"] else 0,
            "validityDays": esim.validity_days,
        },
        "usage": {
            "dataUsedMb": usage["used_mb"],
            "dataTotalMb": usage["total_mb"],
            "dataRemainingMb": usage["remaining_mb"],
            "percentageUsed": usage["usage_percentage"],
        },
        "validity": {
            "activatedAt": iso_z(esim.activated_at),
            "expiresAt": iso_z(esim.expires_at),
            "daysRemaining": days_remaining,
        },
        "activation": {
            "qrCodeUrl": qr_url(base_url, esim),
            "manualCode": esim.lpa,
            "appleInstallUrl": apple_install_url(esim.lpa),
        },
        "createdAt": iso_z(esim.created_at),
    }


EsimRef = Annotated[str, Path(min_length=1, max_length=24, description="ICCID or eSIM id")]
# Both v3 endpoints authenticate like v1 (a bearer token from /auth/token, or the RT-* signature).
V3_ERRORS = v3_documented(
    *AUTH_ERROR_TYPES, InvalidParameter, EsimNotFound, RefreshFailed, ServiceUnavailable
)


@router.get("/esim/{iccid}", responses=V3_ERRORS)
async def get_esim(
    iccid: EsimRef, request: Request, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """One eSIM from stored data."""
    async with runtime.sessions() as session:
        esim = await find(session, caller.account_id, iccid)
        package = await session.get(CatalogPackage, esim.package_id)
    assert package is not None
    now = runtime.clock.now()
    base = public_base_url(request, runtime)
    return envelope(v3_json(esim, package, base, now), "eSIM retrieved", now)


@router.post("/esim/{iccid}/refresh", responses=V3_ERRORS)
async def refresh_esim(
    iccid: EsimRef, request: Request, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Fresh usage from the provider, at most once a minute per eSIM (else stored data)."""
    async with runtime.sessions() as session:
        esim = await find(session, caller.account_id, iccid)
    result = await runtime.refresher.refresh(runtime, esim)
    async with runtime.sessions() as session:
        fresh = await session.get(Esim, esim.id)
        package = await session.get(CatalogPackage, esim.package_id)
    assert fresh is not None and package is not None
    now = runtime.clock.now()
    message = "eSIM data refreshed successfully"
    if result.stale:
        message = "Provider unavailable; showing the last stored data"
    elif result.cached:
        message = "Refreshed less than a minute ago; showing stored data"
    body = envelope(v3_json(fresh, package, public_base_url(request, runtime), now), message, now)
    body["meta"]["cached"] = result.cached
    body["meta"]["refreshedAt"] = iso_z(result.refreshed_at)
    if result.stale:
        body["meta"]["stale"] = True
    return body
