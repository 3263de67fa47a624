"""POST /auth/token: trade an access code and secret for a bearer token."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from esimgate.api.deps import RuntimeDep
from esimgate.api.errors import documented
from esimgate.auth.authenticate import exchange_credentials
from esimgate.auth.errors import InvalidApiKey, InvalidUser
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
    token = await exchange_credentials(
        request, body.accessCode, body.secretKey, wrong="Invalid access code or secret key"
    )
    return {
        "success": True,
        "data": {
            "accessToken": token,
            "tokenType": "Bearer",
            "expiresIn": runtime.settings.token_ttl_seconds,
        },
    }
