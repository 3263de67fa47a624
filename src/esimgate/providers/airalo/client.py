"""A thin typed client for the Airalo Partner API v2: one method per endpoint esimgate uses.

Auth is OAuth2 client-credentials: ``POST /token`` (form-encoded) gives a bearer token that we
cache for its lifetime (capped at a day, as Airalo advises) because the token endpoint allows
only 3 requests a minute. Write calls carry ``airalo-signature`` = lower-case hex
HMAC-SHA512(client_secret, canonical JSON) — see :func:`sign_payload`.

Errors: anything that is not a clean answer is a :class:`TechnicalError` (``committed=False``
only when the request surely never left us: connection failures, or a token failure before the
real request was sent); the upstream's business refusals are :class:`LogicalError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from esimgate.clock import Clock, SystemClock
from esimgate.providers.airalo.wire import (
    AsyncOrderResponse,
    ErrorBody,
    OrderResponse,
    OrdersResponse,
    PackagesResponse,
    TokenResponse,
    TopUpResponse,
    UsageResponse,
    parse_json,
)
from esimgate.providers.base import LogicalError, LogicalReason, TechnicalError
from esimgate.providers.http import exchange, retry_after_seconds

PROVIDER: Final = "airalo"
PRODUCTION_URL: Final = "https://partners-api.airalo.com/v2/"
MAX_BODY_BYTES: Final = 5 * 1024 * 1024
TOKEN_MAX_AGE: Final = timedelta(hours=24)  # docs: refresh at least daily
TOKEN_SAFETY: Final = timedelta(minutes=5)  # renew a little before the upstream's expiry
SIGNATURE_HEADER: Final = "airalo-signature"

_M = TypeVar("_M", bound=BaseModel)


def canonical_payload(payload: Mapping[str, Any] | str) -> str:
    """The string Airalo signs: compact JSON in key order, every ``/`` escaped as ``\\/``."""
    if isinstance(payload, str):
        payload = json.loads(payload)
    compact = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return compact.replace("/", "\\/")


def sign_payload(payload: Mapping[str, Any] | str, secret: str) -> str:
    """``airalo-signature``: lower-case hex HMAC-SHA512 keyed with the client secret (SDK 1.0.3)."""
    message = canonical_payload(payload).encode()
    return hmac.new(secret.encode(), message, hashlib.sha512).hexdigest()


# Business codes (doc §3) → what they mean to us. 53 ("unexpected error") is ambiguous: the order
# may or may not exist, so it is handled as a technical error, never as a definite refusal.
_BUSINESS: Final[dict[int, LogicalReason]] = {
    11: LogicalReason.INSUFFICIENT_FUNDS,
    13: LogicalReason.OUT_OF_STOCK,  # operator under maintenance: nothing sold, try elsewhere
    14: LogicalReason.REJECTED,  # invalid checksum
    23: LogicalReason.NOT_ALLOWED,  # top-up disabled by the operator
    33: LogicalReason.OUT_OF_STOCK,
    34: LogicalReason.OUT_OF_STOCK,  # package invalid or out of stock
    43: LogicalReason.REJECTED,
    73: LogicalReason.NOT_ALLOWED,  # ICCID recycled
    89: LogicalReason.REJECTED,  # IP not on the allow-list
}
_AMBIGUOUS_CODES: Final = frozenset({53})


def _validation_reason(fields: Mapping[str, str]) -> LogicalReason:
    text = " ".join(f"{k} {v}" for k, v in fields.items()).lower()
    if "quantity is not available" in text or "out of stock" in text:
        return LogicalReason.OUT_OF_STOCK
    if "package_id" in fields:
        return LogicalReason.INVALID_PACKAGE
    if "iccid" in fields:
        return LogicalReason.NOT_FOUND
    return LogicalReason.REJECTED


class AiraloClient:
    """One Airalo account. ``http`` is injected (its transport is the test seam) and must have
    the API base URL (ending in ``/v2/``) and ``follow_redirects=False``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        client_id: str,
        client_secret: str,
        *,
        clock: Clock | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock: Clock = clock or SystemClock()
        self._max_body = max_body_bytes
        self._token: str | None = None
        self._token_expires: datetime | None = None
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- endpoints ----------------------------------------------------------------------------

    async def token(self) -> TokenResponse:
        """``POST /token`` — a fresh access token (3/min: use :meth:`access_token` instead)."""
        fields = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "grant_type": "client_credentials",
        }
        headers = {
            "Accept": "application/json",
            SIGNATURE_HEADER: sign_payload(fields, self._client_secret),
        }
        try:
            status, headers_in, body = await self._send(
                "POST", "token", data=fields, headers=headers
            )
            return self._decode(status, headers_in, body, TokenResponse)
        except TechnicalError as exc:
            raise TechnicalError(
                f"token request failed: {exc.message}",
                provider=PROVIDER,
                raw=exc.raw,
                committed=exc.committed,
                retry_after=exc.retry_after,
            ) from exc
        except LogicalError as exc:
            # Bad credentials are our configuration, not the caller's request.
            raise TechnicalError(
                f"token request refused: {exc.message}", provider=PROVIDER, raw=exc.raw
            ) from exc

    async def packages(self, *, page: int = 1, limit: int = 1000) -> PackagesResponse:
        """``GET /packages?include=topup`` — one page of the catalogue, top-ups included."""
        params = {"include": "topup", "limit": str(limit), "page": str(page)}
        return await self._call("GET", "packages", PackagesResponse, params=params)

    async def create_order(self, package_id: str, quantity: int, description: str) -> OrderResponse:
        """``POST /orders`` — synchronous purchase. NOT idempotent upstream."""
        payload = {
            "package_id": package_id,
            "quantity": quantity,
            "type": "sim",
            "description": description,
        }
        return await self._call("POST", "orders", OrderResponse, json_body=payload)

    async def create_order_async(
        self, package_id: str, quantity: int, description: str, webhook_url: str | None
    ) -> AsyncOrderResponse:
        """``POST /orders-async`` — 202 with a ``request_id``; Airalo makes the order later and
        POSTs the result (order body plus ``request_id``) to ``webhook_url``, or to the URL the
        account opted in with when it is ``None``. NOT idempotent upstream."""
        payload: dict[str, Any] = {
            "package_id": package_id,
            "quantity": quantity,
            "type": "sim",
            "description": description,
        }
        if webhook_url:
            payload["webhook_url"] = webhook_url
        return await self._call("POST", "orders-async", AsyncOrderResponse, json_body=payload)

    async def orders(self, *, description: str, page: int = 1, limit: int = 100) -> OrdersResponse:
        """``GET /orders?filter[description]=…`` (a LIKE match: callers must compare exactly)."""
        params = {
            "include": "sims,status",
            "filter[description]": description,
            "limit": str(limit),
            "page": str(page),
        }
        return await self._call("GET", "orders", OrdersResponse, params=params)

    async def usage(self, iccid: str) -> UsageResponse:
        """``GET /sims/{iccid}/usage`` — remaining/total MB and the eSIM's status."""
        return await self._call("GET", f"sims/{_segment(iccid)}/usage", UsageResponse)

    async def create_topup(self, package_id: str, iccid: str, description: str) -> TopUpResponse:
        """``POST /orders/topups`` — synchronous top-up of one eSIM. NOT idempotent upstream."""
        payload = {"package_id": package_id, "iccid": iccid, "description": description}
        return await self._call("POST", "orders/topups", TopUpResponse, json_body=payload)

    # --- auth ---------------------------------------------------------------------------------

    async def access_token(self) -> str:
        """The cached bearer token, fetched when missing or near its expiry."""
        async with self._token_lock:
            now = self._clock.now()
            if self._token is not None and self._token_expires and now < self._token_expires:
                return self._token
            answer = (await self.token()).data
            lifetime = min(timedelta(seconds=max(answer.expires_in, 0)), TOKEN_MAX_AGE)
            self._token = answer.access_token
            self._token_expires = now + max(lifetime - TOKEN_SAFETY, lifetime / 2)
            return self._token

    def forget_token(self, token: str) -> None:
        if self._token == token:
            self._token = None
            self._token_expires = None

    # --- plumbing -----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        model: type[_M],
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> _M:
        content: bytes | None = None
        headers = {"Accept": "application/json"}
        if json_body is not None:
            # Send exactly the signed canonical string: valid JSON (`\/` is a JSON escape), so the
            # signature matches whether the server hashes the raw body or re-serialises it.
            canonical = canonical_payload(json_body)
            content = canonical.encode()
            headers["Content-Type"] = "application/json"
            headers[SIGNATURE_HEADER] = sign_payload(json_body, self._client_secret)
        for attempt in range(2):
            try:
                token = await self.access_token()
            except TechnicalError as exc:
                # The real request was never sent.
                exc.committed = False
                raise
            headers["Authorization"] = f"Bearer {token}"
            status, headers_in, body = await self._send(
                method, path, params=params, content=content, headers=headers
            )
            if status == 401 and attempt == 0:
                # Expired or revoked token: a 401 means nothing was done; renew once and retry.
                self.forget_token(token)
                continue
            return self._decode(status, headers_in, body, model)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str],
    ) -> tuple[int, httpx.Headers, bytes]:
        request = self._http.build_request(
            method, path, params=params, content=content, data=data, headers=headers
        )
        response, body = await exchange(
            self._http, request, limit=self._max_body, provider=PROVIDER, what=f"{method} {path}"
        )
        return response.status_code, response.headers, body

    def _decode(self, status: int, headers: httpx.Headers, body: bytes, model: type[_M]) -> _M:
        raw = body[:2000].decode("utf-8", "replace")
        if 200 <= status < 300:
            try:
                return model.model_validate(parse_json(body))
            except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
                raise TechnicalError(
                    f"HTTP {status}: unreadable response: {exc}", provider=PROVIDER, raw=raw
                ) from exc
        if status == 429:
            raise TechnicalError(
                "rate limited (HTTP 429)",
                provider=PROVIDER,
                raw=raw,
                retry_after=retry_after_seconds(headers.get("Retry-After"), self._clock.now()),
            )
        if 300 <= status < 400:
            raise TechnicalError(
                f"unexpected redirect (HTTP {status}) to {headers.get('Location')!r}",
                provider=PROVIDER,
                raw=raw,
            )
        error = _error_body(body)
        if status in (403, 404, 422) and error is not None:
            raise self._refusal(status, error, raw)
        detail = error.text() if error is not None else raw[:200]
        raise TechnicalError(f"HTTP {status}: {detail}", provider=PROVIDER, raw=raw)

    def _refusal(self, status: int, error: ErrorBody, raw: str) -> LogicalError | TechnicalError:
        message = error.text()
        if error.code is not None:
            if error.code in _AMBIGUOUS_CODES:
                return TechnicalError(
                    f"upstream error {error.code}: {message}", provider=PROVIDER, raw=raw
                )
            reason = _BUSINESS.get(error.code, LogicalReason.REJECTED)
            return LogicalError(
                reason, message, provider=PROVIDER, raw=raw, upstream_code=str(error.code)
            )
        if status == 404:
            return LogicalError(LogicalReason.NOT_FOUND, message, provider=PROVIDER, raw=raw)
        if status == 403:
            return TechnicalError(f"HTTP 403: {message}", provider=PROVIDER, raw=raw)
        fields = error.fields()
        return LogicalError(
            _validation_reason(fields), message, provider=PROVIDER, raw=raw, upstream_code="422"
        )


def _error_body(body: bytes) -> ErrorBody | None:
    try:
        parsed = parse_json(body)
        return ErrorBody.model_validate(parsed) if isinstance(parsed, dict) else None
    except (ValueError, ValidationError):
        return None


def _segment(value: str) -> str:
    """A path segment: ICCIDs are digits, but never let a value change the path."""
    return quote(value, safe="")
