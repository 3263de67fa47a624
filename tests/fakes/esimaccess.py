"""A fake eSIM Access Open API v1 upstream, speaking its real wire format.

``make_app()`` returns ``(app, state)``: a Starlette ASGI app to mount under any base URL (paths
are relative: ``/package/list``, ``/esim/order`` …) and its in-memory :class:`FakeState`.

Reproduced on purpose (see /work/shared/providers/esimaccess.md §2, §3, §7, §8):

* every endpoint is POST + JSON; ``RT-AccessCode`` is checked, and the RT-* HMAC signature when
  those headers are sent (or always, with ``require_signature``); failures come back as
  ``success:false`` envelopes at HTTP 200 with the documented codes;
* envelope drift: ``errorCode`` ``"0"`` or ``null``, ``errorMsg`` mostly but ``errorMessage`` on
  some errors, ``obj`` ``{}`` or ``null``; with ``quirky`` numbers sometimes arrive as strings
  and ``success`` as the string ``"true"``;
* ``transactionId`` de-duplicates orders and top-ups; the balance is debited and refunded, and
  ``/balance/query`` reports it (× 10 000);
* ``/esim/suspend`` and ``/esim/unsuspend`` (by ``esimTranNo`` or ``iccid``): ``GOT_RESOURCE`` or
  ``IN_USE`` → ``SUSPENDED`` → back to the status it had; anything else, a repeat included, is
  ``200002`` (the real upstream documents neither, so the fake is strict); unknown → ``310403``;
* allocation is asynchronous: ``/esim/query`` by ``orderNo`` answers ``200010`` for the first
  ``allocation_polls`` queries (or until :meth:`FakeState.allocate`);
* ICCIDs are reused across orders (a small pool), so keying on ``esimTranNo`` matters;
* faults per path (:meth:`FakeState.fail`): HTTP 500, 429 + Retry-After, invalid JSON, a redirect,
  a business error code, a slow answer, an oversized body, or "commit then 500".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

GIB = 1024**3
MIB = 1024**2
ICCID_POOL = ("8943108170000775671", "89852245280001354019")  # reused on purpose
SMDP = "rsp-eu.redteamobile.com"


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def default_packages() -> list[dict[str, Any]]:
    """Two base packages (one local, one regional day pass) and one top-up, as /package/list."""

    def network(code: str, name: str, operator: str, radio: str) -> dict[str, Any]:
        return {
            "locationName": name,
            "locationLogo": f"/img/flags/{code.lower()}.png",
            "locationCode": code,
            "operatorList": [{"operatorName": operator, "networkType": radio}],
        }

    return [
        {
            "packageCode": "CKH002",
            "slug": "ES_3_30",
            "name": "Spain 3GB 30Days",
            "price": 18000,
            "currencyCode": "USD",
            "volume": 3 * GIB,
            "smsStatus": 0,
            "dataType": 1,
            "unusedValidTime": 180,
            "duration": 30,
            "durationUnit": "DAY",
            "location": "ES",
            "locationCode": "ES",
            "description": "Spain 3GB 30Days",
            "activeType": 2,
            "favorite": False,
            "retailPrice": 36000,
            "speed": "3G/4G/5G",
            "ipExport": "NL/FR",
            "supportTopUpType": 2,
            "fupPolicy": "",
            "locationNetworkList": [network("ES", "Spain", "Vodafone", "5G")],
            "type": "BASE",
        },
        {
            "packageCode": "PEU042",
            "slug": "EU-42_1_7",
            "name": "Europe (42 areas) 1GB/Day 7Days",
            "price": "123456",  # a number as a string
            "currencyCode": "USD",
            "volume": "1073741824",
            "smsStatus": 0,
            "dataType": 2,
            "unusedValidTime": 180,
            "duration": 7,
            "durationUnit": "DAY",
            "location": "FR,DE,IT",
            "locationCode": "EU-42",
            "description": "Europe day pass",
            "activeType": 2,
            "retailPrice": 250000,
            "supportTopUpType": 3,
            "fupPolicy": "384 Kbps",
            "locationNetworkList": [
                network("FR", "France", "Orange", "4G/5G"),
                network("DE", "Germany", "Telekom", "5G"),
            ],
            "type": "BASE",
        },
        {
            "packageCode": "TOPUP_CKH002_1",
            "slug": "TOPUP_ES_1_7",
            "name": "Spain 1GB 7Days top-up",
            "price": 9999,
            "currencyCode": "USD",
            "volume": GIB,
            "smsStatus": 0,
            "dataType": 1,
            "unusedValidTime": 180,
            "duration": 7,
            "durationUnit": "DAY",
            "location": "ES",
            "locationCode": "ES",
            "supportTopUpType": 2,
            "locationNetworkList": [],
            "type": "TOPUP",
            "for": ["CKH002"],
        },
    ]


@dataclass
class FakeEsim:
    esim_tran_no: str
    order_no: str
    transaction_id: str
    iccid: str
    package_code: str
    ac: str
    total_volume: int
    total_duration: int
    expired_time: datetime
    esim_status: str = "GOT_RESOURCE"
    smdp_status: str = "RELEASED"
    order_usage: int = 0
    activate_time: datetime | None = None
    last_update_time: datetime | None = None
    suspended_from: str | None = None  # the esimStatus /esim/unsuspend restores


@dataclass
class FakeOrder:
    order_no: str
    transaction_id: str
    package_code: str
    count: int
    unit_price: int
    polls_left: int
    allocated: bool = False
    esim_tran_nos: list[str] = field(default_factory=list)


@dataclass
class Fault:
    mode: str  # http_500 | http_429 | invalid_json | redirect | business | slow | huge | commit_500
    code: str = "200007"
    retry_after: str = "7"
    delay: float = 0.0
    times: int | None = None  # None = until cleared


@dataclass
class FakeState:
    access_code: str = "test-access-code"
    secret_key: str | None = "test-secret-key"
    require_signature: bool = False
    balance: int = 10_000_000  # × 10 000: 1000.00 USD
    allocation_polls: int = 1
    quirky: bool = True
    packages: list[dict[str, Any]] = field(default_factory=default_packages)
    orders: dict[str, FakeOrder] = field(default_factory=dict)  # by transactionId
    esims: dict[str, FakeEsim] = field(default_factory=dict)  # by esimTranNo
    topups: dict[str, dict[str, Any]] = field(default_factory=dict)  # by transactionId
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _serial: int = 0

    # --- test controls ------------------------------------------------------------------

    def fail(self, path: str, mode: str, **options: Any) -> None:
        self.faults[path] = Fault(mode, **options)

    def clear_faults(self) -> None:
        self.faults.clear()

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(body or b"{}") for p, _, body in self.requests if p == path]

    def order_by_no(self, order_no: str) -> FakeOrder | None:
        return next((o for o in self.orders.values() if o.order_no == order_no), None)

    def allocate(self, order_no: str) -> None:
        order = self.order_by_no(order_no)
        assert order is not None
        self._allocate(order)

    def set_usage(self, esim_tran_no: str, used: int, total: int | None = None) -> None:
        esim = self.esims[esim_tran_no]
        esim.order_usage = used
        if total is not None:
            esim.total_volume = total
        esim.last_update_time = self.now().replace(minute=0, second=0, microsecond=0)

    def set_status(self, esim_tran_no: str, esim_status: str, smdp_status: str) -> None:
        esim = self.esims[esim_tran_no]
        esim.esim_status, esim.smdp_status = esim_status, smdp_status
        if esim_status != "SUSPENDED":
            esim.suspended_from = None
        if esim_status == "IN_USE" and esim.activate_time is None:
            esim.activate_time = self.now()

    # --- internals ----------------------------------------------------------------------

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    def package(self, code: str, type_: str) -> dict[str, Any] | None:
        return next(
            (
                p
                for p in self.packages
                if p["type"] == type_ and code in (p["packageCode"], p.get("slug"))
            ),
            None,
        )

    def _allocate(self, order: FakeOrder) -> None:
        if order.allocated:
            return
        package = self.package(order.package_code, "BASE")
        assert package is not None
        now = self.now()
        for _ in range(order.count):
            serial = self._next()
            tran_no = f"26{serial:012d}"
            matching = uuid.uuid4().hex.upper()
            self.esims[tran_no] = FakeEsim(
                esim_tran_no=tran_no,
                order_no=order.order_no,
                transaction_id=order.transaction_id,
                iccid=ICCID_POOL[serial % len(ICCID_POOL)],
                package_code=package["packageCode"],
                ac=f"LPA:1${SMDP}${matching}",
                total_volume=int(package["volume"]),
                total_duration=int(package["duration"]),
                expired_time=now + timedelta(days=int(package["unusedValidTime"])),
            )
            order.esim_tran_nos.append(tran_no)
        order.allocated = True


def _ok(obj: Any, *, error_code: str | None = "0", success: Any = True) -> JSONResponse:
    return JSONResponse({"success": success, "errorCode": error_code, "errorMsg": None, "obj": obj})


def _error(code: str, message: str, *, key: str = "errorMsg") -> JSONResponse:
    return JSONResponse({"success": False, "errorCode": code, key: message, "obj": None})


def _esim_json(esim: FakeEsim, state: FakeState) -> dict[str, Any]:
    package = state.package(esim.package_code, "BASE") or {}
    volume: Any = str(esim.total_volume) if state.quirky else esim.total_volume
    return {
        "esimTranNo": esim.esim_tran_no,
        "orderNo": esim.order_no,
        "transactionId": esim.transaction_id,
        "imsi": "232104070077567",
        "iccid": esim.iccid,
        "smsStatus": 0,
        "msisdn": "",
        "ac": esim.ac,
        "qrCodeUrl": f"https://p.qrsim.net/{esim.esim_tran_no}.png",
        "shortUrl": f"https://p.qrsim.net/{esim.esim_tran_no}",
        "smdpStatus": esim.smdp_status,
        "eid": "" if esim.smdp_status == "RELEASED" else "89049032005008882600050326403713",
        "activeType": 2,
        "dataType": 1,
        "activateTime": _fmt(esim.activate_time) if esim.activate_time else None,
        "expiredTime": _fmt(esim.expired_time),
        "totalVolume": volume,
        "totalDuration": esim.total_duration,
        "durationUnit": "DAY",
        "orderUsage": esim.order_usage,
        "esimStatus": esim.esim_status,
        "pin": "",
        "puk": "",
        "apn": "drei.at",
        "packageList": [
            {
                "packageName": package.get("name", ""),
                "packageCode": esim.package_code,
                "slug": package.get("slug", ""),
                "duration": package.get("duration", 0),
                "volume": package.get("volume", 0),
                "locationCode": package.get("locationCode", ""),
                "createTime": _fmt(state.now()),
            }
        ],
    }


def make_app(
    state: FakeState | None = None, *, prefix: str = "/api/v1/open", **options: Any
) -> tuple[Starlette, FakeState]:
    """The fake upstream (served under ``prefix``, the real base path) and its state
    (``options`` go to :class:`FakeState`)."""
    state = state or FakeState(**options)

    def auth_error(request: Request, body: bytes) -> JSONResponse | None:
        headers = request.headers
        code = headers.get("RT-AccessCode")
        if not code:
            return _error("000101", "mandatory header RT-AccessCode missing")
        if code != state.access_code:
            return _error("101003", "access code invalid")
        signature = headers.get("RT-Signature")
        if signature is None:
            return (
                _error("000101", "signature headers missing") if state.require_signature else None
            )
        timestamp, request_id = headers.get("RT-Timestamp"), headers.get("RT-RequestID")
        if not timestamp or not request_id or state.secret_key is None:
            return _error("000101", "RT-Timestamp / RT-RequestID missing")
        if not timestamp.isdigit():
            return _error("000102", "RT-Timestamp is not a number")
        message = timestamp.encode() + request_id.encode() + code.encode() + body
        expected = hmac.new(state.secret_key.encode(), message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            return _error("101003", "signature mismatch")
        return None

    async def package_list(body: dict[str, Any]) -> Response:
        type_ = str(body.get("type") or "BASE").upper()
        items = [p for p in state.packages if p["type"] == type_]
        base_code = body.get("packageCode") or body.get("slug")
        if type_ == "TOPUP" and base_code:
            items = [p for p in items if base_code in p.get("for", [])]
        location = body.get("locationCode") or ""
        if location:
            items = [p for p in items if p["locationCode"] == location]
        shown = [{k: v for k, v in p.items() if k not in ("type", "for")} for p in items]
        return _ok({"packageList": shown})

    async def order(body: dict[str, Any]) -> Response:
        txn = body.get("transactionId")
        infos = body.get("packageInfoList")
        if not isinstance(txn, str) or not txn:
            return _error("000105", "transactionId is mandatory")
        if len(txn) > 50:
            return _error("000107", "transactionId too long")
        existing = state.orders.get(txn)
        if existing is not None:  # the same request again: same order, nothing bought
            return _ok({"orderNo": existing.order_no, "transactionId": txn})
        if not isinstance(infos, list) or len(infos) != 1:
            return _error("000105", "packageInfoList must hold one package in this fake")
        info = infos[0]
        package = state.package(str(info.get("packageCode") or info.get("slug") or ""), "BASE")
        if package is None:
            return _error("310241", "packageCode does not exist")
        count = int(info.get("count") or 0)
        if not 1 <= count <= 30:
            return _error("200008", "order parameter error")
        price = int(package["price"])
        if "price" in info and int(info["price"]) != price:
            return _error("200005", "package price error")
        if "amount" in body and int(body["amount"]) != price * count:
            return _error("200006", "total amount error")
        if state.balance < price * count:
            return _error("200007", "insufficient account balance")
        state.balance -= price * count
        order_no = f"B26{state._next():012d}"
        placed = FakeOrder(
            order_no, txn, package["packageCode"], count, price, state.allocation_polls
        )
        state.orders[txn] = placed
        if placed.polls_left <= 0:
            state._allocate(placed)
        return _ok({"orderNo": order_no})

    async def query(body: dict[str, Any]) -> Response:
        pager = body.get("pager")
        if not isinstance(pager, dict) or "pageNum" not in pager or "pageSize" not in pager:
            return _error("000105", "pager is mandatory")
        page_num, page_size = int(pager["pageNum"]), int(pager["pageSize"])
        if not (1 <= page_num <= 10000 and 5 <= page_size <= 500):
            return _error("000107", "pager out of range")
        found: list[FakeEsim]
        if body.get("orderNo"):
            placed = state.order_by_no(body["orderNo"])
            if placed is None:
                return _error("310272", "orderNo does not exist")
            if not placed.allocated:
                placed.polls_left -= 1
                if placed.polls_left < 0:
                    state._allocate(placed)
                else:
                    return _error(
                        "200010",
                        f"the batchOrder has been getting resource, total:[{placed.count}], "
                        "success:[0]",
                    )
            found = [state.esims[t] for t in placed.esim_tran_nos]
        elif body.get("esimTranNo"):
            hit = state.esims.get(body["esimTranNo"])
            found = [hit] if hit else []
        elif body.get("iccid"):
            found = [e for e in state.esims.values() if e.iccid == body["iccid"]]
        elif body.get("startTime") or body.get("endTime"):
            found = list(state.esims.values())
        else:
            return _error("000105", "one of orderNo, iccid, esimTranNo or a time range")
        start = (page_num - 1) * page_size
        page = [_esim_json(e, state) for e in found[start : start + page_size]]
        return _ok(
            {
                "esimList": page,
                "pager": {"pageSize": page_size, "pageNum": page_num, "total": len(found)},
            }
        )

    async def usage(body: dict[str, Any]) -> Response:
        tran_nos = body.get("esimTranNoList")
        if not isinstance(tran_nos, list) or not tran_nos:
            return _error("000105", "esimTranNoList is mandatory")
        if len(tran_nos) > 10:
            return _error("000107", "at most 10 esimTranNo")
        rows = []
        for tran_no in tran_nos:
            esim = state.esims.get(tran_no)
            if esim is None:
                continue
            rows.append(
                {
                    "esimTranNo": tran_no,
                    "dataUsage": str(esim.order_usage) if state.quirky else esim.order_usage,
                    "totalData": esim.total_volume,
                    "lastUpdateTime": _fmt(esim.last_update_time)
                    if esim.last_update_time
                    else None,
                }
            )
        return _ok({"esimUsageList": rows})

    async def topup(body: dict[str, Any]) -> Response:
        txn = body.get("transactionId")
        if not isinstance(txn, str) or not txn:
            return _error("000105", "transactionId is mandatory")
        done = state.topups.get(txn)
        if done is not None:
            return _ok(done, error_code=None)
        esim = state.esims.get(str(body.get("esimTranNo") or ""))
        if esim is None and body.get("iccid"):
            esim = next((e for e in state.esims.values() if e.iccid == body["iccid"]), None)
        if esim is None:
            return _error("310403", "eSIM not found")
        package = state.package(str(body.get("packageCode") or ""), "TOPUP")
        if package is None or esim.package_code not in package.get("for", []):
            return _error("310241", "packageCode does not exist")
        if esim.esim_status in ("UNUSED_EXPIRED", "USED_EXPIRED", "CANCEL", "REVOKE", "REVOKED"):
            return _error("200002", "operation not allowed in current status")
        price = int(package["price"])
        if "amount" in body and int(body["amount"]) != price:
            return _error("200006", "total amount error")
        if state.balance < price:
            return _error("200007", "insufficient account balance")
        state.balance -= price
        esim.total_volume += int(package["volume"])
        esim.total_duration += int(package["duration"])
        esim.expired_time += timedelta(days=int(package["duration"]))
        if esim.esim_status == "USED_UP":
            esim.esim_status = "IN_USE"
        result = {
            "transactionId": txn,
            "topUpEsimTranNo": f"T{state._next():012d}",
            "iccid": esim.iccid,
            "expiredTime": _fmt(esim.expired_time),
            "totalVolume": esim.total_volume,
            "totalDuration": esim.total_duration,
            "orderUsage": esim.order_usage,
        }
        state.topups[txn] = result
        return _ok(result, error_code=None)

    async def cancel(body: dict[str, Any]) -> Response:
        esim = state.esims.get(str(body.get("esimTranNo") or ""))
        if esim is None and body.get("iccid"):
            esim = next((e for e in state.esims.values() if e.iccid == body["iccid"]), None)
        if esim is None:
            return _error("310403", "eSIM not found", key="errorMessage")
        if (esim.esim_status, esim.smdp_status) != ("GOT_RESOURCE", "RELEASED"):
            return _error("200002", "operation not allowed in current status", key="errorMessage")
        esim.esim_status = "CANCEL"
        placed = state.order_by_no(esim.order_no)
        if placed is not None:
            state.balance += placed.unit_price
        return _ok(None, success="true" if state.quirky else True)

    def target(body: dict[str, Any]) -> FakeEsim | JSONResponse:
        """The eSIM a suspend/unsuspend body names, or the error to answer."""
        tran_no, iccid = body.get("esimTranNo"), body.get("iccid")
        if not tran_no and not iccid:
            return _error("000105", "esimTranNo or iccid is mandatory")
        esim = state.esims.get(str(tran_no)) if tran_no else None
        if esim is None and iccid:
            esim = next((e for e in state.esims.values() if e.iccid == iccid), None)
        if esim is None:
            return _error("310403", "eSIM not found")
        return esim

    async def suspend(body: dict[str, Any]) -> Response:
        esim = target(body)
        if isinstance(esim, JSONResponse):
            return esim
        if esim.esim_status not in ("GOT_RESOURCE", "IN_USE"):
            return _error("200002", "operation not allowed in current status")
        esim.suspended_from, esim.esim_status = esim.esim_status, "SUSPENDED"
        return _ok({})

    async def unsuspend(body: dict[str, Any]) -> Response:
        esim = target(body)
        if isinstance(esim, JSONResponse):
            return esim
        if esim.esim_status != "SUSPENDED":
            return _error("200002", "operation not allowed in current status")
        esim.esim_status = esim.suspended_from or "IN_USE"
        esim.suspended_from = None
        return _ok({})

    async def balance(body: dict[str, Any]) -> Response:
        return _ok({"balance": str(state.balance) if state.quirky else state.balance})

    handlers = {
        "/package/list": package_list,
        "/esim/order": order,
        "/esim/query": query,
        "/esim/usage/query": usage,
        "/esim/topup": topup,
        "/esim/cancel": cancel,
        "/esim/suspend": suspend,
        "/esim/unsuspend": unsuspend,
        "/balance/query": balance,
    }

    def endpoint(path: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            raw = await request.body()
            state.requests.append((path, dict(request.headers), raw))
            fault = state.faults.get(path)
            if fault is not None:
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del state.faults[path]
                early = await _fault(fault)
                if early is not None:
                    return early
            refused = auth_error(request, raw)
            if refused is not None:
                return refused
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return _error("000104", "body is not valid JSON")
            if not isinstance(body, dict):
                return _error("000104", "body is not a JSON object")
            response: Response = await handlers[path](body)
            if fault is not None and fault.mode == "commit_500":
                return Response("upstream crashed", status_code=500)
            return response

        return handle

    async def _fault(fault: Fault) -> Response | None:
        if fault.mode == "http_500":
            return Response("<html>Internal Server Error</html>", status_code=500)
        if fault.mode == "http_429":
            return JSONResponse(
                {"success": False, "errorCode": "900001", "errorMsg": "system busy"},
                status_code=429,
                headers={"Retry-After": fault.retry_after},
            )
        if fault.mode == "invalid_json":
            return Response('{"success": true, "obj": {', media_type="application/json")
        if fault.mode == "redirect":
            return RedirectResponse("https://elsewhere.example/login", status_code=302)
        if fault.mode == "business":
            return _error(fault.code, "injected business error")
        if fault.mode == "huge":
            return Response(b"[" + b"0," * (3 * MIB) + b"0]", media_type="application/json")
        if fault.mode == "slow":
            await asyncio.sleep(fault.delay)
        return None

    def method_not_allowed(path: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            return _error("000103", "HTTP method not supported")

        return handle

    routes = [Route(prefix + path, endpoint(path), methods=["POST"]) for path in handlers]
    routes += [Route(prefix + path, method_not_allowed(path), methods=["GET"]) for path in handlers]
    return Starlette(routes=routes), state
