"""X-RateLimit-* headers on every authenticated response, errors included."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from esimgate.auth.admission import Quota
from esimgate.clock import iso_z


class QuotaHeaders:
    """Pure ASGI middleware: reads the quota the authenticator left in the request state."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                quota = scope.get("state", {}).get("quota")
                if isinstance(quota, Quota):
                    headers = MutableHeaders(scope=message)
                    headers["X-RateLimit-Limit"] = str(quota.limit)
                    headers["X-RateLimit-Remaining"] = str(quota.remaining)
                    headers["X-RateLimit-Reset"] = iso_z(quota.reset_at) or ""
            await send(message)

        await self.app(scope, receive, send_with_quota)
