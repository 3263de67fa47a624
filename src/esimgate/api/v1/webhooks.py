"""PUT/GET /webhooks, POST /webhooks/test and /webhooks/rotate-secret."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from esimgate.api.deps import CallerDep, RuntimeDep, SessionDep
from esimgate.api.errors import documented
from esimgate.api.v1.auth_errors import AUTH_ERROR_TYPES
from esimgate.errors import InvalidParameter, MissingFields, NotFound
from esimgate.orders.request import parse_object, required_string
from esimgate.webhooks.models import Delivery, DeliveryStatus
from esimgate.webhooks.service import (
    EVENTS,
    WebhookUrlRefused,
    body_of,
    configure,
    delivery_json,
    endpoint_for,
    parse_events,
    recent,
    rotate_secret,
    send_once,
)

router = APIRouter(tags=["Webhooks"])

SETTINGS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["webhook_url"],
                    "properties": {
                        "webhook_url": {"type": "string", "format": "uri"},
                        "events": {"type": "array", "items": {"type": "string", "enum": EVENTS}},
                        "rotate_secret": {"type": "boolean"},
                    },
                }
            }
        },
    }
}


@router.put(
    "/webhooks",
    openapi_extra=SETTINGS_BODY,
    responses=documented(*AUTH_ERROR_TYPES, MissingFields, InvalidParameter, WebhookUrlRefused),
)
async def put_webhooks(
    request: Request, caller: CallerDep, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    """Set this API key's webhook URL and events; the secret is shown only when created."""
    data = parse_object(await request.body())
    url = required_string(data, "webhook_url", 2000)
    events = parse_events(data.get("events"))
    rotate = data.get("rotate_secret", False)
    if not isinstance(rotate, bool):
        raise InvalidParameter("Invalid parameter: rotate_secret", detail="must be boolean")
    done = await configure(
        session, runtime, caller.account_id, caller.api_key_id, url, events, rotate=rotate
    )
    webhook: dict[str, Any] = {"url": done.endpoint.url, "events": done.endpoint.events}
    if done.secret is not None:
        webhook["secret"] = done.secret
    return {"success": True, "webhook": webhook}


@router.get("/webhooks", responses=documented(*AUTH_ERROR_TYPES))
async def get_webhooks(caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    """This key's webhook settings, the events on offer and the last 10 deliveries."""
    endpoint = await endpoint_for(session, caller.api_key_id)
    return {
        "success": True,
        "webhook": {"url": endpoint.url, "events": endpoint.events} if endpoint else None,
        "available_events": list(EVENTS),
        "recent_deliveries": [delivery_json(d) for d in await recent(session, caller.account_id)],
    }


@router.post("/webhooks/rotate-secret", responses=documented(*AUTH_ERROR_TYPES))
async def rotate(caller: CallerDep, runtime: RuntimeDep, session: SessionDep) -> dict[str, Any]:
    """A new signing secret for this key, shown once; the old one stops signing at once."""
    secret = await rotate_secret(session, runtime, caller.account_id, caller.api_key_id)
    return {"success": True, "webhook": {"secret": secret}}


@router.post("/webhooks/test", responses=documented(*AUTH_ERROR_TYPES, NotFound))
async def send_test(caller: CallerDep, runtime: RuntimeDep, session: SessionDep) -> dict[str, Any]:
    """Send one signed ``webhook.test`` event to this key's URL now and say how it went (the
    receiver's answer body is never shown)."""
    import secrets

    endpoint = await endpoint_for(session, caller.api_key_id)
    if endpoint is None or endpoint.url is None:
        raise NotFound("No webhook URL is set for this API key")
    now = runtime.clock.now()
    delivery = Delivery(
        webhook_id="msg_" + secrets.token_hex(16),
        account_id=caller.account_id,
        endpoint_id=endpoint.id,
        event="webhook.test",
        url=endpoint.url,
        body=body_of("webhook.test", {"message": "esimgate test event"}, now),
        status=DeliveryStatus.PENDING,
        created_at=now,
    )
    secret = runtime.box.decrypt(endpoint.secret_encrypted)
    result = await send_once(runtime, delivery, secret)
    delivery.attempts = 1
    delivery.last_attempt_at = now
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error[:500] if result.error else None
    delivery.status = DeliveryStatus.DELIVERED if result.ok else DeliveryStatus.FAILED
    delivery.delivered_at = now if result.ok else None
    session.add(delivery)
    await session.flush()
    return {
        "success": result.ok,
        "delivery": {**delivery_json(delivery), "error": delivery.last_error},
    }
