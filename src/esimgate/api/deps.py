"""Request-scoped dependencies: the runtime, the caller, and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account
from esimgate.auth.authenticate import Caller, authenticate
from esimgate.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one transaction: committed when the endpoint returns, else rolled back."""
    runtime = get_runtime(request)
    async with runtime.sessions() as session, session.begin():
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
CallerDep = Annotated[Caller, Depends(authenticate)]
SessionDep = Annotated[AsyncSession, Depends(unit_of_work)]


async def caller_account(session: AsyncSession, caller: Caller) -> Account:
    account = await session.get(Account, caller.account_id)
    assert account is not None  # the authenticator just loaded it; accounts are never deleted
    return account


def public_base_url(request: Request, runtime: Runtime) -> str:
    """Where clients reach us, for links we hand out (QR images)."""
    return runtime.settings.public_base_url or str(request.base_url).rstrip("/")
