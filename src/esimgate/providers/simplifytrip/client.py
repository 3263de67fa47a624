"""A thin typed client for the SimplifyTrip Merchant Open API v1: one method per endpoint used.

Every call carries ``Authorization: Bearer <secretKey>`` and ``X-Api-Key: <apiKey>``; write calls
also carry ``X-Signature`` (see :func:`~esimgate.providers.simplifytrip.wire.sign`). Failures
become the port's errors here, so the adapter only sees typed answers:

* transport failures, 5xx, 429, redirects, non-JSON or schema-violating bodies, oversized bodies →
  :class:`TechnicalError` (``committed=False`` only when the request surely never left us);
* 401/403 (our keys, IP allow-list) → :class:`TechnicalError` with ``committed=False``: the
  upstream refused before doing anything, and no retry by a caller can fix it;
* other 4xx → :class:`LogicalError`, the reason chosen from the HTTP status and ``errorCode``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from esimgate.providers.base import LogicalError, LogicalReason, TechnicalError
from esimgate.providers.http import exchange, retry_after_seconds
from esimgate.providers.simplifytrip.wire import (
    CancelOrderResponse,
    CreateOrderRequest,
    CreateOrderResponse,
    ErrorBody,
    EsimInfo,
    OrderDetails,
    ProductPage,
    loads,
    sign,
)

PROVIDER: Final = "simplifytrip"
MAX_BODY_BYTES: Final = 5 * 1024 * 1024
DEFAULT_CANCEL_PATH: Final = "/orders/cancel"  # (unverified) doc §5.5: method and path not shown

_M = TypeVar("_M", bound=BaseModel)

# errorCode words → reasons. Only TOO_MANY_REQUESTS is documented; the rest are guesses matched
# by substring, and an unknown code on a 4xx is a plain REJECTED (doc §3: codes are opaque).
_CODE_HINTS: Final[tuple[tuple[str, LogicalReason], ...]] = (
    ("NOT_FOUND", LogicalReason.NOT_FOUND),
    ("BALANCE", LogicalReason.INSUFFICIENT_FUNDS),
    ("FUND", LogicalReason.INSUFFICIENT_FUNDS),
    ("STOCK", LogicalReason.OUT_OF_STOCK),
    ("SKU", LogicalReason.INVALID_PACKAGE),
    ("PRODUCT", LogicalReason.INVALID_PACKAGE),
    ("PACKAGE", LogicalReason.INVALID_PACKAGE),
    ("CANCEL", LogicalReason.NOT_ALLOWED),
    ("STATE", LogicalReason.NOT_ALLOWED),
    ("STATUS", LogicalReason.NOT_ALLOWED),
    ("NOT_ALLOWED", LogicalReason.NOT_ALLOWED),
)
DUPLICATE_HINTS: Final = ("DUPLICATE", "EXISTS", "ALREADY")


def _snippet(raw: bytes) -> str:
    return raw[:500].decode("utf-8", "replace")


def is_duplicate(error: LogicalError) -> bool:
    """Whether an upstream refusal reads as "this trackId already exists" (doc §5.3, unverified)."""
    code = (error.upstream_code or "").upper()
    return any(hint in code for hint in DUPLICATE_HINTS)


def _logical(status: int, body: ErrorBody, raw: bytes) -> LogicalError:
    code = (body.error_code or "").upper()
    reason = LogicalReason.REJECTED
    if status == 404:
        reason = LogicalReason.NOT_FOUND
    else:
        for hint, candidate in _CODE_HINTS:
            if hint in code:
                reason = candidate
                break
    message = body.message or body.error_code or f"HTTP {status}"
    return LogicalError(
        reason, message, provider=PROVIDER, raw=_snippet(raw), upstream_code=body.error_code
    )


class SimplifyTripClient:
    """One method per upstream endpoint; the injected ``httpx.AsyncClient`` is the test seam."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str,
        secret_key: str,
        checksum_key: str,
        cancel_path: str = DEFAULT_CANCEL_PATH,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._secret_key = secret_key
        self._checksum_key = checksum_key
        self._cancel_path = cancel_path

    @property
    def checksum_key(self) -> str:
        """The HMAC key of ``X-Signature``, which also signs the upstream's webhooks."""
        return self._checksum_key

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- endpoints ------------------------------------------------------------------------

    async def list_products(self, *, skip: int, take: int, type_: str = "eSIM") -> ProductPage:
        """``GET /products?type=&take=&skip=`` (doc §5.1)."""
        params = {"type": type_, "take": str(take), "skip": str(skip)}
        data = await self._call("GET", "/products", params=params)
        return self._parse(ProductPage, data)

    async def create_order(self, body: CreateOrderRequest) -> CreateOrderResponse:
        """``POST /orders`` with ``X-Signature`` (doc §5.2). 200 and 201 are both success."""
        data = await self._call("POST", "/orders", body=body.model_dump(by_alias=True))
        return self._parse(CreateOrderResponse, data)

    async def get_order(self, order_or_track_id: str) -> OrderDetails:
        """``GET /orders/:id`` (doc §5.4, path unverified); ``id`` = orderId or trackId."""
        data = await self._call("GET", f"/orders/{quote(order_or_track_id, safe='')}")
        return self._parse(OrderDetails, data)

    async def cancel_order(self, order_id: str, reason: str | None = None) -> CancelOrderResponse:
        """Cancel an order (doc §5.5, method and path unverified: ``POST`` to ``cancel_path``)."""
        body: dict[str, Any] = {"orderId": order_id}
        if reason:
            body["reason"] = reason
        data = await self._call("POST", self._cancel_path, body=body)
        return self._parse(CancelOrderResponse, data)

    async def esim_info(self, iccid: str) -> EsimInfo:
        """``GET /products/esim/:iccid`` (doc §5.6)."""
        data = await self._call("GET", f"/products/esim/{quote(iccid, safe='')}")
        return self._parse(EsimInfo, data)

    async def get_sim_info(self, iccid: str) -> EsimInfo:
        """``GET /products/sim/:iccid`` (doc §5.7, path unverified): a physical SIM's status,
        activity and usage. Its fields were not captured; the doc assumes the §5.6 shape with
        ``productInfo.type: "SIM"``, so it shares :class:`EsimInfo`."""
        data = await self._call("GET", f"/products/sim/{quote(iccid, safe='')}")
        return self._parse(EsimInfo, data)

    # --- plumbing -------------------------------------------------------------------------

    def _headers(self, body: Mapping[str, Any] | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._secret_key}",
            "X-Api-Key": self._api_key,
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
            headers["X-Signature"] = sign(body, self._checksum_key)
        return headers

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        request = self._http.build_request(
            method,
            path.lstrip("/"),
            params=params,
            content=content,
            headers=self._headers(body),
        )
        response, raw = await exchange(
            self._http, request, limit=MAX_BODY_BYTES, provider=PROVIDER, what=f"{method} {path}"
        )
        return self._decode(response, raw, method, path)

    def _decode(self, response: httpx.Response, raw: bytes, method: str, path: str) -> Any:
        status = response.status_code
        where = f"{method} {path}: HTTP {status}"
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            raise TechnicalError(
                f"{where} redirect to {location!r} (not followed)",
                provider=PROVIDER,
                raw=_snippet(raw),
            )
        if status == 429 or status >= 500:
            raise TechnicalError(
                where,
                provider=PROVIDER,
                raw=_snippet(raw),
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status in (401, 403):
            raise TechnicalError(
                f"{where}: keys or IP allow-list refused",
                provider=PROVIDER,
                raw=_snippet(raw),
                committed=False,
            )
        if 400 <= status < 500:
            try:
                parsed = loads(raw) if raw else {}
                error = ErrorBody.model_validate(parsed if isinstance(parsed, dict) else {})
            except (ValueError, ValidationError):
                error = ErrorBody()
            raise _logical(status, error, raw)
        if status < 200 or status >= 300:
            raise TechnicalError(
                f"{where}: unexpected status", provider=PROVIDER, raw=_snippet(raw)
            )
        try:
            return loads(raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise TechnicalError(
                f"{where}: invalid JSON", provider=PROVIDER, raw=_snippet(raw)
            ) from exc

    @staticmethod
    def _parse(model: type[_M], data: Any) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise TechnicalError(
                f"response does not match {model.__name__}: {exc.error_count()} errors",
                provider=PROVIDER,
                raw=str(exc)[:500],
            ) from exc
