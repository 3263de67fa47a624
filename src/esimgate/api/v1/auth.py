"""POST /auth/token: trade an access code and secret for a bearer token."""

from __future__ import annotations

import hmac
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from esimgate.accounts.models import Account, AccountStatus
from esimgate.api.deps import RuntimeDep
from esimgate.api.errors import documented
from esimgate.auth.authenticate import client_ip
from esimgate.auth.errors import InvalidApiKey, InvalidUser
from esimgate.auth.keys import KeyRepository
from esimgate.auth.models import ApiKeyStatus
from esimgate.errors import InvalidParameter, RateLimitExceeded

router = APIRouter(tags=["Authentication"])


class TokenRequest(BaseModel):
    accessCode: str = Field(min_length=1, max_length=256)  # noqa: N815 - wire name
    secretKey: str = Field(min_length=1, max_length=512)  # noqa: N815 - wire name
    grantType: Literal["client_credentials"] = "client_credentials"  # noqa: N815 - wire name


@router.post(
    "/auth/token",
    responses=documented(InvalidParameter, InvalidApiKey, InvalidUser, RateLimitExceeded),
)
async def issue_token(body: TokenRequest, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Exchange an API key's access code and secret for a bearer token (client credentials)."""
    now = runtime.clock.now()
    ip = client_ip(request)
    throttled = await runtime.gate.failures_exceeded(
        ip, runtime.settings.auth_failures_per_ip_per_hour, now
    )
    if throttled is not None:
        raise RateLimitExceeded(headers={"Retry-After": str(throttled.retry_after(now))})
    async with runtime.sessions() as session:
        key = await KeyRepository(session).by_access_code(body.accessCode)
        account = await session.get(Account, key.account_id) if key else None
    valid = (
        key is not None
        and key.status == ApiKeyStatus.ACTIVE
        and hmac.compare_digest(
            runtime.box.decrypt(key.secret_encrypted).encode(), body.secretKey.encode()
        )
    )
    if not valid or account is None:
        await runtime.gate.record_failure(ip, now)
        raise InvalidApiKey("Invalid access code or secret key")
    if account.status != AccountStatus.ACTIVE:
        raise InvalidUser()
    token = runtime.tokens.issue(body.accessCode, now)
    return {
        "success": True,
        "data": {
            "accessToken": token,
            "tokenType": "Bearer",
            "expiresIn": runtime.settings.token_ttl_seconds,
        },
    }
