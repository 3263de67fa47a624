"""A thin typed client for the eSIM Access Open API v1: one method per endpoint we use.

Everything is ``POST`` with a JSON body. Auth is the ``RT-AccessCode`` header, plus the RT-* HMAC
headers when a secret key is configured (:func:`sign`). Failures are sorted into the port's two
families: :class:`TechnicalError` (transport, 5xx, 429, redirects, broken or oversized bodies,
"server busy" codes, auth rejections) and :class:`LogicalError` (business codes). Code
``200010`` ("profiles still being allocated") is neither: it raises :class:`StillAllocating`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from esimgate.clock import Clock, SystemClock, epoch_ms
from esimgate.providers.base import LogicalError, LogicalReason, TechnicalError
from esimgate.providers.esimaccess import wire
from esimgate.providers.http import exchange, retry_after_seconds

log = logging.getLogger(__name__)

KIND: Final = "esimaccess"
MAX_BODY: Final = 5 * 1024 * 1024
MAX_CATALOGUE_BODY: Final = 64 * 1024 * 1024  # the full package list is large by nature
ALLOCATING: Final = "200010"

_M = TypeVar("_M", bound=BaseModel)

# Codes that mean "the upstream could not do it now", not "no": retryable, maybe committed.
_TECHNICAL: Final = frozenset({"000001", "900001"})
# Auth rejections: checked before anything runs, so nothing was committed.
_AUTH: Final = frozenset({"101001", "101002", "101003"})
_LOGICAL: Final[Mapping[str, LogicalReason]] = {
    "200002": LogicalReason.NOT_ALLOWED,
    "200005": LogicalReason.PRICE_CHANGED,
    "200006": LogicalReason.PRICE_CHANGED,
    "200007": LogicalReason.INSUFFICIENT_FUNDS,
    "200008": LogicalReason.REJECTED,
    "200009": LogicalReason.REJECTED,
    "200011": LogicalReason.OUT_OF_STOCK,
    "310201": LogicalReason.INVALID_PACKAGE,
    "310211": LogicalReason.INVALID_PACKAGE,
    "310241": LogicalReason.INVALID_PACKAGE,
    "310243": LogicalReason.INVALID_PACKAGE,
    "310272": LogicalReason.NOT_FOUND,
    "310403": LogicalReason.NOT_FOUND,
}


class StillAllocating(Exception):
    """``/esim/query`` answered 200010: the order exists, its profiles are not allocated yet."""


def sign(secret_key: str, timestamp: str, request_id: str, access_code: str, body: str) -> str:
    """RT-Signature: lower-case hex HMAC-SHA256(secret, ts + requestId + accessCode + body)."""
    message = f"{timestamp}{request_id}{access_code}{body}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def encode_body(payload: Mapping[str, Any]) -> str:
    """The exact JSON text we send (and sign): compact, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


class EsimAccessClient:
    """Speaks the wire format; knows nothing of the port's types beyond its errors."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        access_code: str,
        secret_key: str | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._http = http
        self._access_code = access_code
        self._secret_key = secret_key or None
        self._clock: Clock = clock or SystemClock()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- endpoints ------------------------------------------------------------------------

    async def list_packages(
        self, *, type_: str = "BASE", package_code: str | None = None, iccid: str | None = None
    ) -> list[wire.Package]:
        payload: dict[str, Any] = {"locationCode": "", "type": type_}
        if package_code:
            payload["packageCode"] = package_code
        if iccid:
            payload["iccid"] = iccid
        obj = await self._call("/package/list", payload, limit=MAX_CATALOGUE_BODY)
        listing = self._parse(wire.PackageListObj, obj, "/package/list")
        packages: list[wire.Package] = []
        for item in listing.package_list:
            try:
                packages.append(wire.Package.model_validate(item))
            except ValidationError as exc:  # one bad package must not hide the catalogue
                log.warning(
                    "eSIM Access: skipping malformed package %r: %s", item.get("packageCode"), exc
                )
        return packages

    async def order(
        self,
        transaction_id: str,
        package_code: str,
        count: int,
        *,
        unit_price_e4: int | None = None,
    ) -> wire.OrderObj:
        item: dict[str, Any] = {"packageCode": package_code, "count": count}
        payload: dict[str, Any] = {"transactionId": transaction_id}
        if unit_price_e4 is not None:
            item["price"] = unit_price_e4
            payload["amount"] = unit_price_e4 * count
        payload["packageInfoList"] = [item]
        obj = await self._call("/esim/order", payload)
        return self._parse(wire.OrderObj, obj, "/esim/order")

    async def query_esims(
        self,
        *,
        order_no: str | None = None,
        esim_tran_no: str | None = None,
        iccid: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
        page_num: int = 1,
        page_size: int = 50,
    ) -> wire.EsimQueryObj:
        """One page of ``/esim/query``; raises :class:`StillAllocating` on 200010."""
        payload: dict[str, Any] = {
            "orderNo": order_no or "",
            "iccid": iccid or "",
            "esimTranNo": esim_tran_no or "",
        }
        if start_time:
            payload["startTime"] = start_time
        if end_time:
            payload["endTime"] = end_time
        payload["pager"] = {"pageNum": page_num, "pageSize": page_size}
        obj = await self._call("/esim/query", payload)
        return self._parse(wire.EsimQueryObj, obj, "/esim/query")

    async def usage(self, esim_tran_nos: Sequence[str]) -> wire.UsageObj:
        obj = await self._call("/esim/usage/query", {"esimTranNoList": list(esim_tran_nos)})
        return self._parse(wire.UsageObj, obj, "/esim/usage/query")

    async def topup(
        self,
        transaction_id: str,
        esim_tran_no: str,
        package_code: str,
        *,
        amount_e4: int | None = None,
    ) -> wire.TopUpObj:
        payload: dict[str, Any] = {
            "esimTranNo": esim_tran_no,
            "packageCode": package_code,
            "transactionId": transaction_id,
        }
        if amount_e4 is not None:
            payload["amount"] = str(amount_e4)  # documented as a string here
        obj = await self._call("/esim/topup", payload)
        return self._parse(wire.TopUpObj, obj, "/esim/topup")

    async def cancel(self, esim_tran_no: str) -> None:
        await self._call("/esim/cancel", {"esimTranNo": esim_tran_no})

    async def suspend(self, esim_tran_no: str) -> None:
        """``/esim/suspend`` with ``{"esimTranNo": …}``: the notes accept ``iccid`` instead, but
        ICCIDs are reused (§7.1), so the per-eSIM number is the only safe key."""
        await self._call("/esim/suspend", {"esimTranNo": esim_tran_no})

    async def unsuspend(self, esim_tran_no: str) -> None:
        """``/esim/unsuspend`` with ``{"esimTranNo": …}`` (see :meth:`suspend`)."""
        await self._call("/esim/unsuspend", {"esimTranNo": esim_tran_no})

    async def balance(self) -> wire.BalanceObj:
        """``/balance/query`` with body ``{}``; the balance is an integer × 10 000."""
        obj = await self._call("/balance/query", {})
        return self._parse(wire.BalanceObj, obj, "/balance/query")

    # --- plumbing -------------------------------------------------------------------------

    def _headers(self, body: str) -> dict[str, str]:
        headers = {
            "RT-AccessCode": self._access_code,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if self._secret_key is not None:
            timestamp = str(epoch_ms(self._clock.now()))
            request_id = uuid.uuid4().hex
            headers["RT-RequestID"] = request_id
            headers["RT-Timestamp"] = timestamp
            headers["RT-Signature"] = sign(
                self._secret_key, timestamp, request_id, self._access_code, body
            )
        return headers

    async def _call(self, path: str, payload: Mapping[str, Any], *, limit: int = MAX_BODY) -> Any:
        """POST, check transport and HTTP, decode the envelope; returns ``obj`` on success."""
        body = encode_body(payload)
        request = self._http.build_request(
            "POST", path, content=body.encode(), headers=self._headers(body)
        )
        raw = await self._send(request, path, limit)
        envelope = self._envelope(raw, path)
        if not envelope.ok:
            raise self._business_error(envelope, path, raw)
        return envelope.obj

    async def _send(self, request: httpx.Request, path: str, limit: int) -> bytes:
        response, raw = await exchange(self._http, request, limit=limit, provider=KIND, what=path)
        status = response.status_code
        if status == 429:
            raise TechnicalError(
                f"{path}: rate limited (HTTP 429)",
                provider=KIND,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            raise TechnicalError(
                f"{path}: unexpected redirect (HTTP {status}) to {location!r}", provider=KIND
            )
        if status >= 500:
            raise TechnicalError(
                f"{path}: upstream error (HTTP {status})",
                provider=KIND,
                raw=raw[:500].decode(errors="replace"),
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status >= 400:
            # Auth failures' HTTP status is undocumented: an envelope with a code wins.
            envelope = self._maybe_envelope(raw)
            if envelope is not None and envelope.error_code not in (None, "", "0"):
                raise self._business_error(envelope, path, raw)
            raise TechnicalError(
                f"{path}: unexpected HTTP {status}",
                provider=KIND,
                raw=raw[:500].decode(errors="replace"),
            )
        return raw

    @staticmethod
    def _maybe_envelope(raw: bytes) -> wire.Envelope | None:
        try:
            return wire.Envelope.model_validate(json.loads(raw, parse_float=Decimal))
        except (ValueError, ValidationError):
            return None

    def _envelope(self, raw: bytes, path: str) -> wire.Envelope:
        try:
            data = json.loads(raw, parse_float=Decimal)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise TechnicalError(
                f"{path}: response is not JSON",
                provider=KIND,
                raw=raw[:500].decode(errors="replace"),
            ) from exc
        try:
            return wire.Envelope.model_validate(data)
        except ValidationError as exc:
            raise TechnicalError(
                f"{path}: response is not an eSIM Access envelope: {exc.error_count()} errors",
                provider=KIND,
                raw=raw[:500].decode(errors="replace"),
            ) from exc

    @staticmethod
    def _parse(model: type[_M], obj: Any, path: str) -> _M:
        try:
            return model.model_validate(obj if obj is not None else {})
        except ValidationError as exc:
            raise TechnicalError(
                f"{path}: unexpected response shape: {exc.errors()[0].get('msg', '')}"
                f" at {exc.errors()[0].get('loc', ())}",
                provider=KIND,
            ) from exc

    @staticmethod
    def _business_error(envelope: wire.Envelope, path: str, raw: bytes) -> Exception:
        code = envelope.error_code or ""
        message = f"{path}: {code} {envelope.error_msg or ''}".strip()
        text = raw[:500].decode(errors="replace")
        if code == ALLOCATING:
            return StillAllocating(message)
        if code in _TECHNICAL:
            return TechnicalError(message, provider=KIND, raw=text)
        if code in _AUTH:
            return TechnicalError(message, provider=KIND, raw=text, committed=False)
        reason = _LOGICAL.get(code, LogicalReason.REJECTED)
        return LogicalError(reason, message, provider=KIND, raw=text, upstream_code=code)
