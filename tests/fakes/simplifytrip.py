"""A fake SimplifyTrip Merchant Open API v1 (doc: /work/shared/providers/simplifytrip.md).

Speaks the documented wire format under ``/api/v1``: Bearer ``sk_test_…`` + ``X-Api-Key
pk_test_…`` auth, ``X-Signature`` on writes (flattened/sorted HMAC-SHA256, recomputed here with an
independent canonicaliser), the ``{timestamp,statusCode,errorCode,message}`` error body, SPU/SKU
products with ``data`` as a display string, always-asynchronous orders (ids only on create, eSIMs
once :meth:`FakeState.fulfil` runs), orders found by orderId or trackId, ``/products/esim/:iccid``
with ``activityLogs`` / ``simStatus`` / ``usageInfoList``, ``/products/sim/:iccid`` for physical
SIMs (doc §5.7, path unverified: the same shape with ``productInfo.type: "SIM"``; register one with
:meth:`FakeState.add_sim`) and a cancel endpoint at the adapter's default (unverified) path. Each
of the two information endpoints knows only its own kind: an eSIM's ICCID is a 404 on the SIM
endpoint and the other way round (the doc is silent; this is the plainest reading). A duplicate
``trackId`` is refused with a configurable ``errorCode``.

Fault injection per endpoint (``state.fail(endpoint, mode, times)``): ``http_500``,
``http_500_after_commit`` (create only: the order exists, the answer is a 500), ``http_429``
(with ``Retry-After``), ``invalid_json``, ``redirect``, ``http_404``, ``business_error``,
``slow``, ``oversized``.
Endpoints: ``products``, ``create_order``, ``get_order``, ``cancel_order``, ``esim``, ``sim``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

API_KEY = "pk_test_fake"
SECRET_KEY = "sk_test_fake"
CHECKSUM_KEY = "ck_test_fake"
SMDP = "SECSMSMINIAPP.EASTCOMPEACE.COM"

PRODUCTS: list[dict[str, Any]] = [
    {
        "spu": "E23XY",
        "createdAt": "2024-10-21T03:07:09.818Z",
        "updatedAt": "2024-10-21T03:07:09.818Z",
        "name": {"vi": "eSIM Ấn Độ", "en": "4G high-speed India travel eSIM, data only"},
        "type": "eSIM",
        "skus": [
            {
                "sku": "E23XY06GB08DFX",
                "package": "FIXED",
                "days": 8,
                "data": "6GB",
                "apn": "internet",
                "hotsPot": True,
                "throttleSpeed": "Stop",
                "smsCall": "No",
                "price": 7.35,
                "currency": "USD",
            },
            {
                "sku": "E23XY500MB01DPY",
                "package": "DAILY",
                "days": "5",  # quirk: number as string
                "data": "500MB",
                "apn": "internet",
                "hotsPot": "true",  # quirk: string boolean
                "throttleSpeed": "128kbps",
                "smsCall": "No",
                "price": "4.1234",  # quirk: price as string
                "currency": "USD",
            },
        ],
    },
    {
        "spu": "EHKXY",
        "createdAt": "2024-10-21T03:07:09.818Z",
        "updatedAt": "2024-10-21T03:07:09.818Z",
        "name": {"vi": "eSIM Hồng Kông", "en": "Hong Kong travel eSIM"},
        "type": "eSIM",
        "skus": [
            {
                "sku": "EHKXY01GB03DFX",
                "package": "FIXED",
                "days": 3,
                "data": "1GB",
                "apn": "internet",
                "hotsPot": True,
                "throttleSpeed": "Stop",
                "smsCall": "No",
                "price": 1.5,
                "currency": "USD",
            }
        ],
    },
    {
        "spu": "SVNXY",
        "createdAt": "2024-10-21T03:07:09.818Z",
        "updatedAt": "2024-10-21T03:07:09.818Z",
        "name": {"vi": "SIM vật lý Việt Nam", "en": "Vietnam physical SIM"},
        "type": "SIM",
        "skus": [
            {"sku": "SVNXY05GB07DFX", "package": "FIXED", "days": 7, "data": "5GB", "price": 3}
        ],
    },
]


def _canonical(payload: Any) -> str:
    """Independent of the adapter's: flatten with ``_``, sort, ``k=v&…``."""
    flat: dict[str, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, f"{path}_{key}" if path else key)
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, f"{path}_{index}" if path else str(index))
        elif isinstance(value, bool):
            flat[path] = "true" if value else "false"
        elif value is None:
            flat[path] = "null"
        else:
            flat[path] = str(value)

    walk(payload, "")
    return "&".join(f"{k}={flat[k]}" for k in sorted(flat))


def signature(payload: Any, key: str = CHECKSUM_KEY) -> str:
    return hmac.new(key.encode(), _canonical(payload).encode(), hashlib.sha256).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


def _error(status: int, code: str, message: str) -> JSONResponse:
    body = {"timestamp": _now(), "statusCode": status, "errorCode": code, "message": message}
    return JSONResponse(body, status_code=status)


@dataclass
class FakeEsim:
    iccid: str
    order_id: str
    track_id: str
    sub_order_id: str
    sub_track_id: str
    sku: str
    activation_code: str
    profile_status: str = "NOT_DOWNLOADED"
    plan_status: str = "UNUSED"
    used_traffic: int = 0
    plan_start: str | None = None
    plan_end: str | None = None
    usage: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeOrder:
    order_id: str
    track_id: str
    items: list[dict[str, Any]]
    status: str = "PROCESSING"  # (unverified) pending word
    error: str | None = None
    esims: list[FakeEsim] = field(default_factory=list)
    created_at: str = field(default_factory=_now)


@dataclass
class FakeState:
    products: list[dict[str, Any]] = field(default_factory=lambda: json.loads(json.dumps(PRODUCTS)))
    orders: dict[str, FakeOrder] = field(default_factory=dict)  # by trackId
    esims: dict[str, FakeEsim] = field(default_factory=dict)  # by ICCID
    sims: dict[str, FakeEsim] = field(default_factory=dict)  # physical SIMs, by ICCID
    faults: dict[str, list[str]] = field(default_factory=dict)  # endpoint → modes, one per call
    duplicate_code: str = "DUPLICATE_TRACK_ID"
    business_code: str = "INSUFFICIENT_BALANCE"
    slow_seconds: float = 2.0
    create_calls: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail(self, endpoint: str, mode: str, times: int = 1) -> None:
        self.faults.setdefault(endpoint, []).extend([mode] * times)

    def _fault(self, endpoint: str) -> str | None:
        queue = self.faults.get(endpoint)
        return queue.pop(0) if queue else None

    def find_order(self, key: str) -> FakeOrder | None:
        if key in self.orders:
            return self.orders[key]
        return next((o for o in self.orders.values() if o.order_id == key), None)

    def place(self, body: dict[str, Any]) -> FakeOrder:
        serial = next(self._serial)
        order = FakeOrder(str(481989189736539 + serial), body["trackId"], body["items"])
        self.orders[order.track_id] = order
        return order

    def fulfil(self, track_id: str) -> FakeOrder:
        """Provisioning finishes: eSIMs get ICCIDs, the order turns SUCCESS."""
        order = self.orders[track_id]
        for line_no, item in enumerate(order.items):
            for _ in range(int(item["quantity"])):
                serial = next(self._serial)
                esim = FakeEsim(
                    iccid=f"8981200391682{serial:07d}",
                    order_id=order.order_id,
                    track_id=order.track_id,
                    sub_order_id=f"68235a3f02fe6633689{line_no:05d}",
                    sub_track_id=item["subTrackId"],
                    sku=item["sku"],
                    activation_code=f"{serial:032X}",
                    logs=[
                        {
                            "eid": None,
                            "recordTime": "2025-05-13 22:42:42",
                            "status": "NOT_DOWNLOADED",
                        }
                    ],
                )
                order.esims.append(esim)
                self.esims[esim.iccid] = esim
        order.status = "SUCCESS"
        return order

    def fail_order(self, track_id: str, error: str) -> None:
        self.orders[track_id].status = "FAILED"
        self.orders[track_id].error = error

    def add_sim(
        self,
        *,
        sku: str = "SVNXY05GB07DFX",
        used: int = 0,
        plan_status: str = "UNUSED",
        profile_status: str | None = None,
        plan_start: str | None = None,
        plan_end: str | None = None,
    ) -> FakeEsim:
        """A physical SIM sold through this account (outside esimgate), with its usage; only
        ``GET /products/sim/:iccid`` knows it."""
        serial = next(self._serial)
        sim = FakeEsim(
            iccid=f"8984049{serial:012d}",
            order_id=str(591989189736539 + serial),
            track_id=f"sim-order-{serial}",
            sub_order_id=f"78235a3f02fe6633689{serial:05d}",
            sub_track_id=f"sim-order-{serial}-1",
            sku=sku,
            activation_code="",
            logs=[{"eid": None, "recordTime": "2025-05-13 22:42:42", "status": "INSTALLED"}],
        )
        self.sims[sim.iccid] = sim
        self.set_usage(
            sim.iccid,
            used=used,
            plan_status=plan_status,
            profile_status=profile_status,
            plan_start=plan_start,
            plan_end=plan_end,
        )
        return sim

    def set_usage(
        self,
        iccid: str,
        *,
        used: int,
        plan_status: str,
        profile_status: str | None = None,
        record_time: str = "2025-05-14 09:00:00",
        plan_start: str | None = None,
        plan_end: str | None = None,
    ) -> None:
        esim = self.esims.get(iccid) or self.sims[iccid]
        esim.used_traffic = used
        esim.plan_status = plan_status
        esim.plan_start, esim.plan_end = plan_start, plan_end
        if used:
            esim.usage = [{"usedDate": "2025-05-14T00:00:00.000Z", "usageAmt": used}]
        if profile_status is not None:
            # Newest entry first on purpose: the adapter must pick by recordTime, not position.
            esim.logs.insert(
                0, {"eid": "8904903200", "recordTime": record_time, "status": profile_status}
            )

    def sku(self, code: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        for product in self.products:
            for sku in product["skus"]:
                if sku["sku"] == code:
                    return product, sku
        return None

    # --- wire renderings ----------------------------------------------------------------

    def esim_json(self, esim: FakeEsim) -> dict[str, Any]:
        return {
            "qrCodeContent": f"LPA:1${SMDP}${esim.activation_code}",
            "qrCodeImg": "https://files.simplifytrip.com/a11dd3c438f38f5383fa17c8ea2de3ef.png",
            "iccid": esim.iccid,
            "planAPN": "plus.4g",
            "smdpAddress": SMDP,
            "pin": "1234",
            "puk": "15095300",
            "activationCode": esim.activation_code,
        }

    def order_items(self, order: FakeOrder) -> list[dict[str, Any]]:
        items = []
        for line_no, item in enumerate(order.items):
            mine = [e for e in order.esims if e.sub_track_id == item["subTrackId"]]
            items.append(
                {
                    "subOrderId": f"68235a3f02fe6633689{line_no:05d}",
                    "subTrackId": item["subTrackId"],
                    "sku": item["sku"],
                    "quantity": item["quantity"],
                    "type": "eSIM",
                    "status": order.status,
                    "eSims": [self.esim_json(e) for e in mine],
                }
            )
        return items

    def webhook(self, track_id: str) -> tuple[dict[str, str], bytes]:
        """A signed PURCHASE_ORDER_SUCCESS delivery for a fulfilled order: (headers, raw body)."""
        order = self.orders[track_id]
        body = {
            "id": "6740ce7f9d042322159bc6401",
            "type": "PURCHASE_ORDER_SUCCESS",
            "sentDate": "2024-11-24T17:42:31.424Z",
            "createdAt": "2024-11-24T17:42:31.424Z",
            "mode": "TEST_MODE",
            "data": {
                "orderId": order.order_id,
                "trackId": order.track_id,
                "status": order.status,
                "items": self.order_items(order),
            },
        }
        raw = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Simplify-Trip-Signature": signature(body),
        }
        return headers, raw


def make_app(state: FakeState | None = None) -> tuple[Starlette, FakeState]:
    state = state or FakeState()

    def auth(request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {SECRET_KEY}":
            return _error(401, "UNAUTHORIZED", "Invalid secret key")
        if request.headers.get("x-api-key") != API_KEY:
            return _error(401, "UNAUTHORIZED", "Invalid api key")
        return None

    async def signed_body(request: Request) -> dict[str, Any] | Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "BAD_REQUEST", "Body must be JSON")
        if not isinstance(body, dict):
            return _error(400, "BAD_REQUEST", "Body must be a JSON object")
        if request.headers.get("x-signature") != signature(body):
            return _error(400, "INVALID_SIGNATURE", "Invalid signature")
        return body

    async def faulted(endpoint: str) -> Response | None:
        mode = state._fault(endpoint)
        if mode is None:
            return None
        if mode == "slow":
            await asyncio.sleep(state.slow_seconds)
            return None
        if mode == "http_500":
            return _error(500, "INTERNAL_SERVER_ERROR", "Internal server error")
        if mode == "http_429":
            response = _error(429, "TOO_MANY_REQUESTS", "Too many requests")
            response.headers["Retry-After"] = "7"
            return response
        if mode == "invalid_json":
            return Response("{not json", media_type="application/json")
        if mode == "redirect":
            return RedirectResponse("https://login.simplifytrip.com/", status_code=302)
        if mode == "http_404":
            return _error(404, "ORDER_NOT_FOUND", "Order not found")
        if mode == "business_error":
            return _error(422, state.business_code, "Business rule violated")
        if mode == "oversized":
            return Response(b"[" + b"0," * (3 * 1024 * 1024) + b"0]", media_type="application/json")
        raise AssertionError(f"unknown fault {mode!r}")

    def record(request: Request, body: Any = None) -> None:
        state.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body,
            }
        )

    async def products(request: Request) -> Response:
        record(request)
        if (denied := auth(request)) is not None:
            return denied
        if (fault := await faulted("products")) is not None:
            return fault
        wanted = request.query_params.get("type")
        items = [p for p in state.products if wanted is None or p["type"] == wanted]
        skip = int(request.query_params.get("skip", "0"))
        take = int(request.query_params.get("take", "10"))
        page = items[skip : skip + take]
        return JSONResponse({"total": len(items), "skip": skip, "take": take, "items": page})

    async def create_order(request: Request) -> Response:
        if (denied := auth(request)) is not None:
            record(request)
            return denied
        body = await signed_body(request)
        record(request, body if isinstance(body, dict) else None)
        if isinstance(body, Response):
            return body
        mode = state._fault("create_order")
        if mode is not None and mode != "http_500_after_commit":
            state.faults.setdefault("create_order", []).insert(0, mode)
            if (fault := await faulted("create_order")) is not None:
                return fault
        state.create_calls += 1
        track_id = body.get("trackId")
        items = body.get("items")
        if (
            not isinstance(track_id, str)
            or not track_id
            or not isinstance(items, list)
            or not items
        ):
            return _error(400, "BAD_REQUEST", "trackId and items are required")
        if track_id in state.orders:
            return _error(409, state.duplicate_code, f"trackId {track_id} already exists")
        for item in items:
            if state.sku(str(item.get("sku"))) is None:
                return _error(400, "INVALID_SKU", f"SKU {item.get('sku')} not found")
        order = state.place(body)
        if mode == "http_500_after_commit":
            return _error(500, "INTERNAL_SERVER_ERROR", "Internal server error")
        answer = {
            "success": True,
            "orderId": order.order_id,
            "trackId": order.track_id,
            "items": [
                {
                    "subOrderId": f"68235a3f02fe6633689{n:05d}",
                    "subTrackId": item["subTrackId"],
                    "sku": item["sku"],
                    "quantity": item["quantity"],
                    "type": "eSIM",
                }
                for n, item in enumerate(order.items)
            ],
        }
        return JSONResponse(answer, status_code=201)

    async def get_order(request: Request) -> Response:
        record(request)
        if (denied := auth(request)) is not None:
            return denied
        if (fault := await faulted("get_order")) is not None:
            return fault
        order = state.find_order(request.path_params["id"])
        if order is None:
            return _error(404, "ORDER_NOT_FOUND", "Order not found")
        body: dict[str, Any] = {
            "id": order.order_id,
            "trackId": order.track_id,
            "createdAt": order.created_at,
            "updatedAt": _now(),
            "status": order.status,
            "total": "12.5",
            "items": state.order_items(order),
        }
        if order.error:
            body["error"] = order.error
        return JSONResponse(body)

    async def cancel_order(request: Request) -> Response:
        if (denied := auth(request)) is not None:
            record(request)
            return denied
        body = await signed_body(request)
        record(request, body if isinstance(body, dict) else None)
        if isinstance(body, Response):
            return body
        if (fault := await faulted("cancel_order")) is not None:
            return fault
        order = state.find_order(str(body.get("orderId")))
        if order is None:
            return _error(404, "ORDER_NOT_FOUND", "Order not found")
        untouched = all(
            e.profile_status == "NOT_DOWNLOADED" and e.plan_status == "UNUSED" for e in order.esims
        )
        if order.status not in ("PROCESSING", "SUCCESS") or not untouched:
            return _error(422, "ORDER_NOT_CANCELLABLE", f"Order is {order.status}")
        order.status = "CANCELLED"
        for esim in order.esims:
            esim.plan_status = "UNAVAILABLE"
        return JSONResponse(
            {
                "id": order.order_id,
                "trackId": order.track_id,
                "createdAt": order.created_at,
                "updatedAt": _now(),
                "status": order.status,
                "reason": body.get("reason"),
                "items": state.order_items(order),
            }
        )

    async def esim_info(request: Request) -> Response:
        record(request)
        if (denied := auth(request)) is not None:
            return denied
        if (fault := await faulted("esim")) is not None:
            return fault
        esim = state.esims.get(request.path_params["iccid"])
        if esim is None:
            return _error(404, "ICCID_NOT_FOUND", "eSIM not found")
        return JSONResponse(info_json(esim, "eSIM"))

    async def sim_info(request: Request) -> Response:
        record(request)
        if (denied := auth(request)) is not None:
            return denied
        if (fault := await faulted("sim")) is not None:
            return fault
        sim = state.sims.get(request.path_params["iccid"])
        if sim is None:
            return _error(404, "ICCID_NOT_FOUND", "SIM not found")
        return JSONResponse(info_json(sim, "SIM"))

    def info_json(esim: FakeEsim, kind: str) -> dict[str, Any]:
        """The §5.6 body; ``kind`` is ``productInfo.type`` (``eSIM`` or ``SIM``)."""
        found = state.sku(esim.sku)
        assert found is not None
        product, sku = found
        product_info = {
            "sku": sku["sku"],
            "spu": product["spu"],
            "name": product["name"],
            "type": kind,
            "package": sku["package"],
            "days": sku["days"],
            "data": sku["data"],
            "apn": sku.get("apn"),
            "hotsPot": sku.get("hotsPot"),
            "throttleSpeed": sku.get("throttleSpeed"),
            "pointContactType": None,
            "smsCall": sku.get("smsCall"),
        }
        return {
            "activityLogs": esim.logs,
            "usageInfoList": esim.usage,
            "simStatus": {
                "planStartTime": esim.plan_start,
                "planEndTime": esim.plan_end,
                "remainingDays": 1,
                "usedTraffic": esim.used_traffic,
                "planStatus": esim.plan_status,
            },
            "iccid": esim.iccid,
            "orderInfo": {
                "orderId": esim.order_id,
                "trackId": esim.track_id,
                "subOrderId": esim.sub_order_id,
                "subTrackId": esim.sub_track_id,
                "purchaseDate": "2025-05-13T14:42:07.069Z",
            },
            "productInfo": product_info,
        }

    app = Starlette(
        routes=[
            Route("/api/v1/products", products, methods=["GET"]),
            Route("/api/v1/products/esim/{iccid}", esim_info, methods=["GET"]),
            Route("/api/v1/products/sim/{iccid}", sim_info, methods=["GET"]),
            Route("/api/v1/orders", create_order, methods=["POST"]),
            Route("/api/v1/orders/cancel", cancel_order, methods=["POST"]),
            Route("/api/v1/orders/{id}", get_order, methods=["GET"]),
        ]
    )
    return app, state
