"""POST /api/v1/providers/{provider_account}/webhooks: notifications from upstreams."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from esimgate.api.deps import RuntimeDep
from esimgate.api.errors import documented
from esimgate.api.text import NO_NUL
from esimgate.auth.authenticate import client_ip
from esimgate.auth.errors import InvalidSignature
from esimgate.errors import InvalidParameter, NotFound
from esimgate.providers.base import Capability, LogicalError, WebhookReceiver
from esimgate.providers.inbound import store
from esimgate.providers.repository import ProviderAccountRepository

router = APIRouter(prefix="/api/v1/providers", tags=["Provider webhooks"])

MAX_BODY = 1024 * 1024


@router.post(
    "/{provider_account}/webhooks",
    responses=documented(InvalidParameter, NotFound, InvalidSignature),
)
async def receive(
    provider_account: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
    request: Request,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Verify, deduplicate and store a provider's notification; it is acted on only after the
    provider confirms the state when asked."""
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name(provider_account)
    adapter = runtime.providers.adapter(account) if account else None
    if account is None or not receives_webhooks(adapter):
        raise NotFound("No provider account here receives webhooks")
    assert isinstance(adapter, WebhookReceiver)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidSignature("Notification refused", detail="body too large")
    try:
        notice = adapter.parse_webhook(dict(request.headers), body, client_ip(request))
    except LogicalError as exc:
        raise InvalidSignature("Notification refused", detail=exc.message) from None
    async with runtime.sessions() as session, session.begin():
        stored = await store(session, account.id, notice, body, runtime.clock.now())
    return {"success": True, "duplicate": stored is None}


@router.head("/{provider_account}/webhooks", responses=documented(InvalidParameter, NotFound))
async def probe(
    provider_account: Annotated[str, Path(max_length=64, pattern=NO_NUL)], runtime: RuntimeDep
) -> None:
    """Upstreams (Airalo) check the URL with a HEAD request before they send to it."""
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name(provider_account)
    if account is None or not receives_webhooks(runtime.providers.adapter(account)):
        raise NotFound("No provider account here receives webhooks")


def receives_webhooks(adapter: object) -> bool:
    """An adapter that can verify notifications and is configured to (a secret is set)."""
    return isinstance(adapter, WebhookReceiver) and Capability.WEBHOOKS in getattr(
        adapter, "capabilities", frozenset()
    )
