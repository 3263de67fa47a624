"""GET /balance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from esimgate.api.deps import CallerDep, SessionDep, caller_account
from esimgate.api.v1.auth_errors import AUTH_ERRORS
from esimgate.money import render

router = APIRouter(tags=["Account"])


@router.get("/balance", responses=AUTH_ERRORS)
async def balance(caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    """The account's prepaid balance."""
    account = await caller_account(session, caller)
    return {
        "success": True,
        "data": {
            "balance": render(account.balance_minor, account.currency),
            "currency": account.currency,
        },
    }
