"""A thin typed client for the esimfly Business API (as an upstream), one method per endpoint.

Every request is signed with RT-* HMAC (:func:`sign`): upper-case hex HMAC-SHA256 of
``timestamp + requestId + accessCode + rawBody`` with the secret key, a fresh UUID v4 request id
per HTTP attempt and a millisecond timestamp. The body is serialised once and the signed bytes are
the bytes sent. Redirects are never followed and bodies are capped.

Errors: :class:`TechnicalError` for transport failures, 3xx, 5xx, 429, auth failures, broken or
schema-violating JSON and oversized bodies (``committed=False`` only when the request surely never
reached esimfly: connect errors, and 401 authentication refusals, which esimfly decides before
doing anything); :class:`LogicalError` for business error codes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from esimgate.clock import Clock, SystemClock, epoch_ms
from esimgate.providers.base import LogicalError, LogicalReason, TechnicalError
from esimgate.providers.esimfly.wire import (
    CancelData,
    ErrorBody,
    LiveStatus,
    OrderCreated,
    OrderDetail,
    OrderEnvelope,
    PackagePage,
    TopUpCreated,
    Usage,
)
from esimgate.providers.http import exchange, retry_after_seconds

PROVIDER = "esimfly"
PRODUCTION_BASE_URL = "https://esimfly.net/api/v1/business"
MAX_BODY_BYTES = 5 * 1024 * 1024
_M = TypeVar("_M", bound=BaseModel)

# Business error codes → our reasons. Anything else in a 4xx is a definite REJECTED.
_REASONS: Mapping[str, LogicalReason] = {
    "INSUFFICIENT_BALANCE": LogicalReason.INSUFFICIENT_FUNDS,
    "INVALID_PACKAGE": LogicalReason.INVALID_PACKAGE,
    "PACKAGE_NOT_FOUND": LogicalReason.INVALID_PACKAGE,
    "INVALID_TOPUP_PACKAGE": LogicalReason.INVALID_PACKAGE,
    "PRICE_MISMATCH": LogicalReason.PRICE_CHANGED,
    "ORDER_NOT_FOUND": LogicalReason.NOT_FOUND,
    "ESIM_NOT_FOUND": LogicalReason.NOT_FOUND,
    "ESIM_NOT_TOPPABLE": LogicalReason.NOT_ALLOWED,
    "TOPUP_NOT_SUPPORTED": LogicalReason.NOT_ALLOWED,
    "NOT_ELIGIBLE": LogicalReason.NOT_ALLOWED,
    "ALREADY_CANCELLED": LogicalReason.NOT_ALLOWED,
    "UNSUPPORTED_PROVIDER": LogicalReason.NOT_ALLOWED,
    "NOT_SUPPORTED": LogicalReason.NOT_ALLOWED,
    "SMS_NOT_SUPPORTED": LogicalReason.NOT_ALLOWED,
    "ESIM_ACCESS_DENIED": LogicalReason.NOT_ALLOWED,
    "FORBIDDEN": LogicalReason.NOT_ALLOWED,
}
# Codes that say "our request/credentials are broken", not "the upstream refused the business".
_TECHNICAL_CODES = frozenset(
    {
        "INVALID_API_KEY",
        "INVALID_SIGNATURE",
        "INVALID_TIMESTAMP",
        "INVALID_REQUEST_ID",
        "HMAC_REQUIRED",
        "INVALID_USER",
        "INVALID_TOKEN",
        "RATE_LIMIT_EXCEEDED",
        "PROVIDER_ERROR",
        "ORDER_PROCESSING_ERROR",
        "SERVICE_UNAVAILABLE",
    }
)


class InFlight(TechnicalError):
    """409 DUPLICATE_REQUEST on an idempotency key: the first attempt is still running."""


def sign(secret_key: str, timestamp: str, request_id: str, access_code: str, body: str) -> str:
    """The RT-Signature: UPPER(hex(HMAC_SHA256(secret, ts + requestId + accessCode + body)))."""
    message = (timestamp + request_id + access_code + body).encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest().upper()


def _retry_after(headers: httpx.Headers, now: datetime) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds or HTTP date), else ``X-RateLimit-Reset``
    (Unix seconds, Unix ms or ISO 8601 — the docs disagree)."""
    seconds = retry_after_seconds(headers.get("retry-after"), now)
    if seconds is not None:
        return seconds
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            number = float(reset)
        except ValueError:
            try:
                moment = datetime.fromisoformat(reset.replace("Z", "+00:00"))
            except ValueError:
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return max(0.0, (moment - now).total_seconds())
        if number > 1e11:  # milliseconds
            number /= 1000
        if number > 1e9:  # an epoch, not a delay
            return max(0.0, number - now.timestamp())
        return max(0.0, number)
    return None


class EsimflyClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        access_code: str,
        secret_key: str,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.http = http
        self.access_code = access_code
        self.secret_key = secret_key
        self.clock: Clock = clock or SystemClock()

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- endpoints ------------------------------------------------------------------------------

    async def list_packages(self, page: int = 1, limit: int = 100) -> PackagePage:
        body = await self._call("GET", "/esims/packages", params={"page": page, "limit": limit})
        return self._parse(PackagePage, self._data(body), body)

    async def create_order(
        self,
        package_code: str,
        quantity: int,
        idempotency_key: str,
        callback_url: str | None = None,
    ) -> OrderCreated:
        payload: dict[str, Any] = {
            "packageCode": package_code,
            "quantity": quantity,
            "idempotency_key": idempotency_key,
        }
        if callback_url:
            payload["callbackUrl"] = callback_url
        body = await self._call("POST", "/esims/order", json_body=payload)
        return self._parse(OrderCreated, body, body)

    async def get_order(self, order_reference: str) -> OrderDetail:
        body = await self._call("GET", "/esims/order", params={"orderReference": order_reference})
        return self._parse(OrderEnvelope, body, body).order

    async def usage(self, iccid: str) -> Usage:
        body = await self._call("GET", "/esims/usage/query", params={"iccid": iccid})
        return self._parse(Usage, self._data(body), body)

    async def live_status(self, iccid: str) -> LiveStatus:
        body = await self._call("POST", "/esims/status", json_body={"iccid": iccid})
        return self._parse(LiveStatus, self._data(body), body)

    async def topup_packages(self, iccid: str, page: int = 1, limit: int = 100) -> PackagePage:
        params: dict[str, str | int] = {"iccid": iccid, "page": page, "limit": limit}
        body = await self._call("GET", "/topup/packages", params=params)
        return self._parse(PackagePage, self._data(body), body)

    async def topup_order(self, iccid: str, package_code: str, quantity: int) -> TopUpCreated:
        payload = {"iccid": iccid, "packageCode": package_code, "quantity": quantity}
        body = await self._call("POST", "/topup/order", json_body=payload)
        return self._parse(TopUpCreated, body, body)

    async def cancel(self, iccid: str) -> CancelData:
        body = await self._call("POST", "/esims/cancel", json_body={"iccid": iccid})
        return self._parse(CancelData, self._data(body), body)

    # --- plumbing -------------------------------------------------------------------------------

    def headers(self, body: str) -> dict[str, str]:
        timestamp = str(epoch_ms(self.clock.now()))
        request_id = str(uuid.uuid4())
        headers = {
            "RT-AccessCode": self.access_code,
            "RT-RequestID": request_id,
            "RT-Timestamp": timestamp,
            "RT-Signature": sign(self.secret_key, timestamp, request_id, self.access_code, body),
            "Accept": "application/json",
        }
        if body:
            headers["Content-Type"] = "application/json"
        return headers

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = "" if json_body is None else json.dumps(json_body, separators=(",", ":"))
        request = self.http.build_request(
            method,
            path.lstrip("/"),
            params=params,
            content=body.encode(),
            headers=self.headers(body),
        )
        response, raw = await exchange(
            self.http, request, limit=MAX_BODY_BYTES, provider=PROVIDER, what=f"esimfly {path}"
        )
        return self._check(response, raw)

    def _check(self, response: httpx.Response, raw: bytes) -> dict[str, Any]:
        status = response.status_code
        text = raw[:2000].decode("utf-8", "replace")
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            raise TechnicalError(
                f"esimfly answered a redirect {status} to {location!r}", provider=PROVIDER, raw=text
            )
        if status == 429:
            raise TechnicalError(
                "esimfly rate limit exceeded",
                provider=PROVIDER,
                raw=text,
                retry_after=_retry_after(response.headers, self.clock.now()),
            )
        if status >= 500:
            raise TechnicalError(
                f"esimfly server error {status}",
                provider=PROVIDER,
                raw=text,
                retry_after=_retry_after(response.headers, self.clock.now()),
            )
        body = self._json(raw, text, status)
        if status >= 400 or body.get("success") is False or body.get("success") == "false":
            self._raise_error(status, body, text)
        if not 200 <= status < 300:
            raise TechnicalError(f"esimfly answered {status}", provider=PROVIDER, raw=text)
        return body

    @staticmethod
    def _json(raw: bytes, text: str, status: int) -> dict[str, Any]:
        try:
            body = json.loads(raw, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TechnicalError(
                f"esimfly answered {status} with invalid JSON", provider=PROVIDER, raw=text
            ) from exc
        if not isinstance(body, dict):
            raise TechnicalError(
                f"esimfly answered {status} with a non-object JSON body",
                provider=PROVIDER,
                raw=text,
            )
        return body

    def _raise_error(self, status: int, body: dict[str, Any], text: str) -> None:
        try:
            error = ErrorBody.model_validate(body)
        except ValidationError:
            error = ErrorBody()
        code = (error.code or "").upper() or None
        message = f"esimfly {status} {code or ''}: {error.text}".replace("  ", " ")
        if code == "DUPLICATE_REQUEST" and status == 409:
            raise InFlight(message, provider=PROVIDER, raw=text)
        if status == 401:
            # esimfly authenticates before doing anything: nothing was processed.
            raise TechnicalError(message, provider=PROVIDER, raw=text, committed=False)
        if code in _TECHNICAL_CODES or code == "DUPLICATE_REQUEST" or (status == 403 and not code):
            raise TechnicalError(message, provider=PROVIDER, raw=text)
        reason = _REASONS.get(code or "")
        if reason is None:
            reason = LogicalReason.NOT_FOUND if status == 404 else LogicalReason.REJECTED
        raise LogicalError(reason, message, provider=PROVIDER, raw=text, upstream_code=code)

    @staticmethod
    def _data(body: dict[str, Any]) -> Any:
        data = body.get("data")
        if data is None:
            raise TechnicalError(
                "esimfly answer has no 'data'", provider=PROVIDER, raw=json.dumps(body)[:2000]
            )
        return data

    @staticmethod
    def _parse(model: type[_M], value: Any, body: dict[str, Any]) -> _M:
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            raise TechnicalError(
                f"esimfly answer does not match {model.__name__}: {exc.errors()[:3]}",
                provider=PROVIDER,
                raw=json.dumps(body, default=str)[:2000],
            ) from exc
