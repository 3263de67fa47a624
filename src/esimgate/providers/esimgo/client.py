"""A thin typed client for the eSIM Go v2.5 API: one method per endpoint used.

Auth is the ``X-API-Key`` header (no request signing). Errors are mapped at this boundary:

* transport failures, 5xx, 429/503 (with ``Retry-After``), redirects, oversized or non-JSON or
  schema-violating bodies → :class:`TechnicalError` (``committed=False`` only when the request
  surely never left: connect errors and pool timeouts);
* 401 and 403 "unauthorised" → :class:`TechnicalError` with ``committed=False`` (the key was
  refused before anything happened — an operator problem, not the customer's);
* other 4xx ``{"message": …}`` → :class:`LogicalError`, the reason chosen from status and text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from esimgate.providers.base import LogicalError, LogicalReason, TechnicalError
from esimgate.providers.esimgo.wire import (
    CataloguePage,
    Compatibility,
    EsimBundles,
    EsimDetails,
    EsimList,
    InstallDetails,
    Location,
    OrderResponse,
    StatusBody,
)
from esimgate.providers.http import exchange, retry_after_seconds

PROVIDER: Final = "esimgo"
PRODUCTION_BASE_URL: Final = "https://api.esim-go.com/v2.5"
MAX_BODY_BYTES: Final = 5 * 1024 * 1024
_RAW_SNIPPET: Final = 2000

_M = TypeVar("_M", bound=BaseModel)
_INSTALL_LIST = TypeAdapter(list[InstallDetails])


def auth_headers(api_key: str) -> dict[str, str]:
    """eSIM Go authenticates every call with the API key itself; nothing is signed."""
    return {"X-API-Key": api_key}


def _snippet(body: bytes) -> str:
    return body[:_RAW_SNIPPET].decode("utf-8", "replace")


def classify(status: int, message: str) -> LogicalReason:
    """The port's reason for an eSIM Go 4xx. The texts are not documented as codes, so this is
    a best guess by keyword; anything unrecognised is a plain REJECTED."""
    text = message.casefold()
    if any(w in text for w in ("insufficient", "balance", "credit", "funds")):
        return LogicalReason.INSUFFICIENT_FUNDS
    if "no bundles left" in text or "out of stock" in text or "sold out" in text:
        return LogicalReason.OUT_OF_STOCK
    if "compatib" in text or "not allowed" in text:
        return LogicalReason.NOT_ALLOWED
    if "iccid" in text and (status == 404 or "not found" in text or "not accessible" in text):
        return LogicalReason.NOT_FOUND
    if "bundle" in text and any(
        w in text for w in ("not found", "invalid", "does not exist", "unknown", "not available")
    ):
        return LogicalReason.INVALID_PACKAGE
    if status == 404:
        return LogicalReason.NOT_FOUND
    return LogicalReason.REJECTED


def _is_auth_failure(status: int, message: str) -> bool:
    text = message.casefold()
    return status == 401 or (
        status == 403 and ("unauthori" in text or "invalid token" in text or "api key" in text)
    )


class EsimGoClient:
    """Typed calls to eSIM Go; ``http`` is injected (its transport is the test seam)."""

    def __init__(self, http: httpx.AsyncClient, api_key: str) -> None:
        self._http = http
        self._headers = auth_headers(api_key)

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- endpoints --------------------------------------------------------------------------

    async def get_catalogue(self, page: int, per_page: int) -> CataloguePage:
        params = {"page": str(page), "perPage": str(per_page)}
        return _model(CataloguePage, await self._call("GET", "/catalogue", params=params))

    async def post_orders(
        self, kind: str, order: list[dict[str, Any]], *, assign: bool = True
    ) -> OrderResponse:
        """``POST /orders`` with ``type`` ``validate`` (free dry run) or ``transaction``."""
        body = {"type": kind, "assign": assign, "order": order}
        return _model(OrderResponse, await self._call("POST", "/orders", json_body=body))

    async def get_order(self, order_reference: str) -> OrderResponse:
        path = f"/orders/{quote(order_reference, safe='')}"
        return _model(OrderResponse, await self._call("GET", path))

    async def get_assignments(self, reference: str) -> list[InstallDetails]:
        """Install details of an order; one object or an array of them (JSON, not the CSV)."""
        data = await self._call(
            "GET",
            "/esims/assignments",
            params={"reference": reference},
            accept="application/json",
        )
        if isinstance(data, dict):
            data = [data]
        try:
            return _INSTALL_LIST.validate_python(data)
        except ValidationError as exc:
            raise _schema_error(exc) from None

    async def list_esims_by_customer_ref(self, customer_ref: str) -> EsimList:
        params = {"filterBy": "customerRef", "filter": customer_ref, "perPage": "100"}
        return _model(EsimList, await self._call("GET", "/esims", params=params))

    async def set_customer_ref(self, iccid: str, customer_ref: str) -> StatusBody:
        body = {"iccid": iccid, "customerRef": customer_ref}
        return _model(StatusBody, await self._call("PUT", "/esims", json_body=body))

    async def get_esim(self, iccid: str) -> EsimDetails:
        return _model(EsimDetails, await self._call("GET", f"/esims/{quote(iccid, safe='')}"))

    async def get_esim_bundles(self, iccid: str) -> EsimBundles:
        params = {"includeUsed": "true", "limit": "200"}
        path = f"/esims/{quote(iccid, safe='')}/bundles"
        return _model(EsimBundles, await self._call("GET", path, params=params))

    async def get_location(self, iccid: str) -> Location:
        """Where the network last saw the eSIM (operator, PLMN, country, time)."""
        path = f"/esims/{quote(iccid, safe='')}/location"
        return _model(Location, await self._call("GET", path))

    async def is_compatible(self, iccid: str, bundle: str) -> bool:
        path = f"/esims/{quote(iccid, safe='')}/compatible/{quote(bundle, safe='')}"
        return _model(Compatibility, await self._call("GET", path)).compatible

    # --- transport --------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        accept: str = "application/json",
    ) -> Any:
        headers = {**self._headers, "Accept": accept}
        content: bytes | None = None
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        request = self._http.build_request(
            method, path, params=params, content=content, headers=headers
        )
        response, body = await exchange(
            self._http, request, limit=MAX_BODY_BYTES, provider=PROVIDER, what=f"eSIM Go {path}"
        )
        return _decode(response, body)


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _snippet(body).strip()
    if isinstance(data, dict):
        for key in ("message", "Message", "error", "errorMessage", "status"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    return _snippet(body).strip()


def _decode(response: httpx.Response, body: bytes) -> Any:
    status = response.status_code
    raw = _snippet(body)
    if 300 <= status < 400:
        where = response.headers.get("Location", "?")
        raise TechnicalError(
            f"eSIM Go answered a redirect {status} to {where}", provider=PROVIDER, raw=raw
        )
    if status in (429, 503) or status >= 500:
        raise TechnicalError(
            f"eSIM Go HTTP {status}: {_message(body)}",
            provider=PROVIDER,
            raw=raw,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status >= 400:
        message = _message(body) or f"HTTP {status}"
        if _is_auth_failure(status, message):
            raise TechnicalError(
                f"eSIM Go refused the API key (HTTP {status}): {message}",
                provider=PROVIDER,
                raw=raw,
                committed=False,
            )
        raise LogicalError(
            classify(status, message),
            message,
            provider=PROVIDER,
            raw=raw,
            upstream_code=str(status),
        )
    if status < 200:
        raise TechnicalError(f"eSIM Go HTTP {status}", provider=PROVIDER, raw=raw)
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TechnicalError(
            f"eSIM Go sent invalid JSON (HTTP {status})", provider=PROVIDER, raw=raw
        ) from exc


def _schema_error(exc: ValidationError) -> TechnicalError:
    return TechnicalError(
        f"eSIM Go response does not match its schema: {exc.errors()[:3]}", provider=PROVIDER
    )


def _model(model: type[_M], data: Any) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(exc) from None
