"""A fake esimfly Business API (as an upstream) speaking the documented wire format.

RT-* HMAC auth over the raw body (upper-case hex, ±5 min, UUID v4 request ids single use), the
per-endpoint envelopes (``data`` for reads, top level for orders, ``order`` for order status, no
``success`` key in usage errors), mixed camelCase/snake_case, GB/bytes/MB units, an async
(KDDI-style) package that answers ``pending_details`` until polled ``pending_polls`` times,
``idempotency_key`` replays (``duplicate: true``), no idempotency on top-ups, and fault injection
per endpoint (``state.faults[name] = Fault(...)``).

``make_app(...) -> (app, state)``; mount with ``httpx.ASGITransport(app)`` and base URL
``http://esimfly.test/api/v1/business/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BASE = "/api/v1/business"
ACCESS_CODE = "esf_test"
SECRET_KEY = "sk_test"


@dataclass
class Fault:
    """``kind``: http500 | 429 | invalid_json | redirect | business | slow."""

    kind: str
    code: str = "INVALID_PACKAGE"
    status: int = 400
    retry_after: str = "7"
    delay: float = 0.5
    times: int = 1_000_000  # how many calls it affects


@dataclass
class FakeEsim:
    iccid: str
    esim_id: int
    order_reference: str
    package_code: str
    status: str = "NEW"
    esim_status: str = "New"
    smdp_status: str = "RELEASED"
    profile: str = "Not Installed"
    total_mb: Decimal = Decimal(0)
    used_mb: Decimal = Decimal(0)
    unlimited: bool = False
    lpa: str = ""


@dataclass
class FakeOrder:
    reference: str
    package_code: str
    quantity: int
    amount: Decimal
    polls_left: int
    iccids: list[str] = field(default_factory=list)
    status: str = "completed"


@dataclass
class FakeState:
    access_code: str = ACCESS_CODE
    secret_key: str = SECRET_KEY
    currency: str = "USD"
    balance: Decimal = Decimal("100.00")
    pending_polls: int = 1
    packages: list[dict[str, Any]] = field(default_factory=list)
    topups: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, FakeOrder] = field(default_factory=dict)
    idempotency: dict[str, dict[str, Any]] = field(default_factory=dict)
    esims: dict[str, FakeEsim] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    request_ids: set[str] = field(default_factory=set)
    calls: dict[str, int] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)  # POST bodies, as parsed
    orders_placed: int = 0
    topups_placed: int = 0
    in_flight: set[str] = field(default_factory=set)
    _serial: int = 0

    def next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def set_usage(self, iccid: str, *, used_mb: str | None = None, **fields: str) -> None:
        esim = self.esims[iccid]
        if used_mb is not None:
            esim.used_mb = Decimal(used_mb)
        for name, value in fields.items():
            setattr(esim, name, value)


def default_packages() -> list[dict[str, Any]]:
    us_ops = [
        {"operatorName": "Verizon", "networkType": "5G"},
        {"operatorName": "T-Mobile", "networkType": "5G"},
    ]
    return [
        {
            "package_code": "PHAJHEAYP",
            "name": "United States 1GB 7Days",
            "region": "United States",
            "type": "local",
            "data_amount_gb": Decimal("1"),
            "validity_days": 7,
            "cost": Decimal("1.44"),
            "currency": "USD",
            "features": {"voice_minutes": 0, "sms_count": 0, "is_rechargeable": True},
            "is_unlimited": False,
            "has_voice": False,
            "has_sms": False,
            "locationNetworkList": [
                {
                    "locationName": "United States",
                    "locationLogo": "/images/flags/us.png",
                    "operatorList": us_ops,
                }
            ],
        },
        {
            "package_code": "EU-UNL-5D",
            "name": "Europe Unlimited 5Days",
            "region": "Europe",
            "type": "regional",
            "data_amount_gb": "0",  # numbers as strings: a documented quirk elsewhere
            "validity_days": "5",
            "cost": "12.5",
            "currency": "USD",
            "features": {"voice_minutes": 0, "sms_count": 0, "is_rechargeable": "false"},
            "is_unlimited": "true",
            "locationNetworkList": [
                {"locationName": "France", "locationLogo": "/images/flags/fr.png"},
                {"locationName": "Germany", "locationLogo": "/images/flags/de.png"},
            ],
        },
        {
            "package_code": "JP-KDDI-12GB",
            "name": "Japan 12 GB 4 Days",
            "region": "Japan",
            "type": "local",
            "data_amount_gb": Decimal("12"),
            "validity_days": 4,
            "cost": Decimal("5.85"),
            "currency": "USD",
            "features": {"voice_minutes": 0, "sms_count": 0, "is_rechargeable": False},
            "is_unlimited": False,
            "networks": [
                {
                    "network_name": "KDDI",
                    "network_type": "5G",
                    "country_name": "Japan",
                    "country_iso2": "JP",
                    "mcc_code": "440",
                    "mnc_code": "51",
                }
            ],
        },
    ]


def default_topups() -> list[dict[str, Any]]:
    return [
        {
            "package_code": "TOPUP_PXOO225PI",
            "name": "United States 3GB 30Days",
            "data_amount_gb": 3,
            "validity_days": 30,
            "cost": Decimal("10.56"),
            "currency": "USD",
            "features": {"is_rechargeable": True},
            "is_unlimited": False,
        }
    ]


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return float(o)  # the wire has JSON numbers; the adapter must parse them exactly
        return super().default(o)


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    # Serialise Decimals as plain JSON numbers (no float round-trip in the text).
    text = json.dumps(body, cls=_Encoder)
    return Response(text, status, headers=headers, media_type="application/json")


def make_app(
    *,
    access_code: str = ACCESS_CODE,
    secret_key: str = SECRET_KEY,
    balance: str = "100.00",
    pending_polls: int = 1,
) -> tuple[Starlette, FakeState]:
    state = FakeState(
        access_code=access_code,
        secret_key=secret_key,
        balance=Decimal(balance),
        pending_polls=pending_polls,
        packages=default_packages(),
        topups=default_topups(),
    )

    def error(status: int, message: str, code: str | None = None, **extra: Any) -> Response:
        body: dict[str, Any] = {"success": False, "error": message}
        if code:
            body["code"] = code
        body.update(extra)
        return _json(body, status)

    async def authenticate(request: Request, raw: bytes) -> Response | None:
        h = request.headers
        names = ("rt-accesscode", "rt-requestid", "rt-timestamp", "rt-signature")
        present = [n for n in names if h.get(n)]
        if not present:
            return _json(
                {
                    "success": False,
                    "error": "Authentication required",
                    "message": "Please provide either Bearer token or complete HMAC signature "
                    "authentication",
                },
                401,
            )
        if len(present) < 4:
            return error(401, "Incomplete HMAC headers", "HMAC_REQUIRED")
        if h["rt-accesscode"] != state.access_code:
            return error(401, "Invalid API key", "INVALID_API_KEY")
        try:
            rid = uuid.UUID(h["rt-requestid"])
            valid_rid = rid.version == 4 and str(rid) == h["rt-requestid"]
        except ValueError:
            valid_rid = False
        if not valid_rid:
            return error(
                400,
                "Invalid or missing RT-RequestID header. Must be a valid UUID v4.",
                "INVALID_REQUEST_ID",
            )
        try:
            ts = int(h["rt-timestamp"])
        except ValueError:
            return error(401, "Invalid timestamp", "INVALID_TIMESTAMP")
        if abs(ts - int(time.time() * 1000)) > 5 * 60 * 1000:
            return error(401, "Request timestamp expired", "INVALID_TIMESTAMP")
        message = h["rt-timestamp"] + h["rt-requestid"] + h["rt-accesscode"]
        expected = hmac.new(
            state.secret_key.encode(), message.encode() + raw, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected.upper(), h["rt-signature"]):  # upper case, as sent
            return error(401, "Invalid signature", "INVALID_SIGNATURE")
        if h["rt-requestid"] in state.request_ids:
            return error(400, "Request ID has already been used", "DUPLICATE_REQUEST")
        state.request_ids.add(h["rt-requestid"])
        return None

    async def fault(name: str) -> Response | None:
        f = state.faults.get(name)
        if f is None or f.times <= 0:
            return None
        f.times -= 1
        if f.kind == "http500":
            return error(500, "Internal error", "ORDER_PROCESSING_ERROR")
        if f.kind == "429":
            return _json(
                {"success": False, "error": "Too many requests", "code": "RATE_LIMIT_EXCEEDED"},
                429,
                {"Retry-After": f.retry_after, "X-RateLimit-Remaining": "0"},
            )
        if f.kind == "invalid_json":
            return Response("{not json", 200, media_type="application/json")
        if f.kind == "redirect":
            return Response(status_code=302, headers={"Location": "https://evil.test/x"})
        if f.kind == "business":
            return error(f.status, f"forced {f.code}", f.code)
        if f.kind == "slow":
            await asyncio.sleep(f.delay)
        return None

    def endpoint(name: str, handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            raw = await request.body()
            refused = await authenticate(request, raw)
            if refused is not None:
                return refused
            state.calls[name] = state.calls.get(name, 0) + 1
            injected = await fault(name)
            if injected is not None:
                return injected
            body: dict[str, Any] = {}
            if raw:
                try:
                    body = json.loads(raw, parse_float=Decimal)
                except ValueError:
                    return error(400, "Invalid JSON body", "INVALID_PARAMETER")
                state.received.append({"endpoint": name, **body})
            response: Response = await handler(request, body)
            return response

        return wrapped

    # --- handlers ------------------------------------------------------------------------------

    async def packages(request: Request, _body: dict[str, Any]) -> Response:
        page = int(request.query_params.get("page", "1"))
        limit = int(request.query_params.get("limit", "50"))
        items = state.packages
        pages = max(1, -(-len(items) // limit))
        chunk = items[(page - 1) * limit : page * limit]
        pagination = {"page": page, "limit": limit, "total": len(items), "totalPages": pages}
        return _json({"success": True, "data": {"packages": chunk, "pagination": pagination}})

    def esim_wire(esim: FakeEsim) -> dict[str, Any]:
        return {
            "iccid": esim.iccid,
            "lpaString": esim.lpa,
            "qrCodeUrl": "data:image/png;base64,iVBORw0KGgo...",
            "directAppleInstallUrl": "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata="
            + esim.lpa,
            "status": "New",
            "profileStatus": "nodownload",
            "isPending": False,
            "total_volume": None if esim.unlimited else int(esim.total_mb * 1024 * 1024),
        }

    def allocate(order: FakeOrder, package: dict[str, Any]) -> None:
        unlimited = str(package.get("is_unlimited")).lower() == "true"
        for _ in range(order.quantity):
            serial = state.next_serial()
            iccid = f"89320420000100{serial:05d}"
            lpa = f"LPA:1$rsp-3104.idemia.io$MATCH-{serial:05d}"
            state.esims[iccid] = FakeEsim(
                iccid,
                2500 + serial,
                order.reference,
                order.package_code,
                total_mb=Decimal(str(package["data_amount_gb"])) * 1024,
                unlimited=unlimited,
                lpa=lpa,
            )
            order.iccids.append(iccid)
        order.status = "completed"

    async def create_order(request: Request, body: dict[str, Any]) -> Response:
        code = body.get("packageCode")
        if not code:
            return error(400, "packageCode is required", "MISSING_PACKAGE_CODE")
        key = body.get("idempotency_key")
        if key is not None and key in state.idempotency:
            return _json({**state.idempotency[key], "duplicate": True})
        if key is not None and key in state.in_flight:
            return error(
                409, "Request with this idempotency key is in progress", "DUPLICATE_REQUEST"
            )
        package = next((p for p in state.packages if p["package_code"] == code), None)
        if package is None:
            return error(400, "Invalid package", "INVALID_PACKAGE")
        quantity = int(body.get("quantity", 1))
        amount = Decimal(str(package["cost"])) * quantity
        if amount > state.balance:
            return error(
                400,
                "Insufficient balance",
                "INSUFFICIENT_BALANCE",
                currentBalance=state.balance,
                requiredBalance=amount,
                needToLoad=amount - state.balance,
            )
        if key is not None:
            state.in_flight.add(key)
        try:
            await fault("esims/order:after")  # a "slow" fault here keeps the key in flight
            state.balance -= amount
            state.orders_placed += 1
            reference = f"order_{int(time.time() * 1000)}_{state.next_serial():05d}"
            kddi = "KDDI" in code
            order = FakeOrder(reference, code, quantity, amount, state.pending_polls if kddi else 0)
            state.orders[reference] = order
            if kddi:
                order.status = "pending_details"
                answer: dict[str, Any] = {
                    "success": True,
                    "message": "Order created successfully. KDDI eSIM is being provisioned.",
                    "orderReference": reference,
                    "packageName": package["name"],
                    "status": "pending_details",
                    "amount": amount,
                    "currency": state.currency,
                    "isPending": True,
                    "esims": [],
                }
            else:
                allocate(order, package)
                first = state.esims[order.iccids[0]]
                answer = {
                    "success": True,
                    "message": "Order processed successfully",
                    "orderReference": reference,
                    "esimId": first.esim_id,
                    "packageName": package["name"],
                    "newBalance": state.balance,
                    "currency": state.currency,
                    "lpaString": first.lpa,
                    "paymentMethod": "balance",
                    "status": "completed",
                    "amount": amount,
                    "profit": Decimal("0.20"),
                    "final_price": amount,
                    "processing_time_ms": 3245,
                    "esims": [esim_wire(state.esims[i]) for i in order.iccids],
                }
            if key is not None:
                state.idempotency[key] = answer
            return _json(answer)
        finally:
            if key is not None:
                state.in_flight.discard(key)

    async def order_status(request: Request, _body: dict[str, Any]) -> Response:
        reference = request.query_params.get("orderReference", "")
        order = state.orders.get(reference)
        if order is None:
            return error(404, "Order not found", "ORDER_NOT_FOUND")
        package = next(p for p in state.packages if p["package_code"] == order.package_code)
        if order.status == "pending_details":
            if order.polls_left > 0:
                order.polls_left -= 1
            else:
                allocate(order, package)
        base: dict[str, Any] = {
            "id": 1,
            "orderReference": reference,
            "packageName": package["name"],
            "packageCode": order.package_code,
            "status": order.status,
            "amount": order.amount,
            "finalPrice": order.amount,
            "paymentMethod": "balance",
            "paymentStatus": "succeeded",
        }
        if not order.iccids:
            base["esim"] = {"iccid": None, "isPending": True}
        else:
            esim = state.esims[order.iccids[0]]
            base["esim"] = {
                **esim_wire(esim),
                "status": "New",
                "totalVolume": None if esim.unlimited else int(esim.total_mb * 1024 * 1024),
                "totalDuration": package["validity_days"],
            }
        return _json({"success": True, "order": base})

    async def usage(request: Request, _body: dict[str, Any]) -> Response:
        iccid = request.query_params.get("iccid")
        if not iccid:
            return _json(
                {"error": "Bad Request", "message": "Either iccid or order_id is required"}, 400
            )
        esim = state.esims.get(iccid)
        if esim is None:
            return _json(
                {"error": "Not Found", "message": "eSIM not found or you do not have access to it"},
                404,
            )
        total = Decimal(0) if esim.unlimited else esim.total_mb
        return _json(
            {
                "success": True,
                "data": {
                    "esim": {
                        "iccid": esim.iccid,
                        "order_id": esim.order_reference,
                        "package_name": esim.package_code,
                        "status": esim.status,
                    },
                    "data": {
                        "total_mb": total,
                        "used_mb": esim.used_mb,
                        "remaining_mb": Decimal(0) if esim.unlimited else total - esim.used_mb,
                        "usage_percentage": 0,
                        "is_unlimited": esim.unlimited,
                    },
                    "validity": {
                        "days": 7,
                        "activated_at": None,
                        "expires_at": "2030-01-01T00:00:00Z",
                        "is_expired": False,
                    },
                },
            }
        )

    async def live_status(request: Request, body: dict[str, Any]) -> Response:
        esim = state.esims.get(str(body.get("iccid", "")))
        if esim is None:
            return error(404, "eSIM not found", "ESIM_NOT_FOUND")
        return _json(
            {
                "success": True,
                "data": {
                    "iccid": esim.iccid,
                    "status": esim.status,
                    "esim_status": esim.esim_status,
                    "smdp_status": esim.smdp_status,
                    "profile": esim.profile,
                    "unlimited": esim.unlimited,
                    "last_network": {
                        "operator": "Verizon",
                        "mcc": "311",
                        "mnc": "480",
                        "country": "United States",
                        "country_iso2": "US",
                        "connection_type": "4G - LTE",
                    },
                    "device": {"model": "iPhone 15", "imei": "356938035643809"},
                    "activation_date": None,
                    "last_usage_date": None,
                    "expiry_date": None,
                    "data_usage": {"used_gb": 0, "total_gb": None, "unlimited": esim.unlimited},
                },
            }
        )

    async def topup_packages(request: Request, _body: dict[str, Any]) -> Response:
        iccid = request.query_params.get("iccid", "")
        if iccid not in state.esims:
            return error(404, "eSIM not found", "ESIM_NOT_FOUND")
        items = state.topups
        pagination = {"page": 1, "limit": 50, "total": len(items), "total_pages": 1}
        return _json({"success": True, "data": {"packages": items, "pagination": pagination}})

    async def topup_order(request: Request, body: dict[str, Any]) -> Response:
        esim = state.esims.get(str(body.get("iccid", "")))
        if esim is None:
            return error(404, "eSIM not found", "ESIM_NOT_FOUND")
        if esim.status not in ("ACTIVE", "DEPLETED", "NEW"):
            return error(400, f"eSIM status {esim.status} cannot be topped up", "ESIM_NOT_TOPPABLE")
        package = next(
            (p for p in state.topups if p["package_code"] == body.get("packageCode")), None
        )
        if package is None:
            return error(400, "Invalid top-up package", "INVALID_TOPUP_PACKAGE")
        quantity = int(body.get("quantity", 1))
        amount = Decimal(str(package["cost"])) * quantity
        state.balance -= amount
        state.topups_placed += 1
        esim.total_mb += Decimal(str(package["data_amount_gb"])) * 1024 * quantity
        if esim.status == "DEPLETED":
            esim.status = "ACTIVE"
        return _json(
            {
                "success": True,
                "message": "eSIM top-up processed successfully",
                "orderReference": f"topup_{int(time.time() * 1000)}_{state.next_serial():05d}",
                "iccid": esim.iccid,
                "packageName": package["name"],
                "newBalance": state.balance,
                "currency": state.currency,
                "status": "completed",
                "amount": amount,
                "profit": Decimal("0.23"),
                "processing_time_ms": 3724,
                "esimData": {
                    "newTotalVolumeGB": esim.total_mb / 1024,
                    "newRemainingVolumeGB": (esim.total_mb - esim.used_mb) / 1024,
                    "expiredTime": "February 13, 2026 at 11:27 PM",
                },
            }
        )

    async def cancel(request: Request, body: dict[str, Any]) -> Response:
        iccid = body.get("iccid")
        if not iccid and body.get("esimId") is None:
            return error(400, "iccid or esimId is required", "MISSING_IDENTIFIER")
        esim = state.esims.get(str(iccid))
        if esim is None:
            return error(404, "eSIM not found", "ESIM_NOT_FOUND")
        if esim.status == "CANCELLED":
            return error(400, "Order already cancelled", "ALREADY_CANCELLED")
        order = state.orders[esim.order_reference]
        siblings = [state.esims[i] for i in order.iccids]
        if any(e.status != "NEW" or e.profile != "Not Installed" for e in siblings):
            return error(
                400,
                "eSIM is not eligible for cancellation",
                "NOT_ELIGIBLE",
                details={"ineligibleEsims": [e.iccid for e in siblings if e.status != "NEW"]},
            )
        for e in siblings:
            e.status = "CANCELLED"
        state.balance += order.amount
        unit = order.amount / len(siblings)
        return _json(
            {
                "success": True,
                "data": {
                    "order_reference": order.reference,
                    "total_esims": len(siblings),
                    "cancelled_esims": len(siblings),
                    "failed_esims": 0,
                    "refunded_amount": order.amount,
                    "currency": state.currency,
                    "refund_method": "balance",
                    "balance_credited": True,
                    "partial_cancellation": False,
                    "cancel_results": [
                        {
                            "esimId": e.esim_id,
                            "iccid": e.iccid,
                            "success": True,
                            "refundAmount": unit,
                        }
                        for e in siblings
                    ],
                },
            }
        )

    routes = [
        Route(f"{BASE}/esims/packages", endpoint("esims/packages", packages), methods=["GET"]),
        Route(f"{BASE}/esims/order", endpoint("esims/order", create_order), methods=["POST"]),
        Route(f"{BASE}/esims/order", endpoint("esims/order:get", order_status), methods=["GET"]),
        Route(f"{BASE}/esims/usage/query", endpoint("esims/usage", usage), methods=["GET"]),
        Route(f"{BASE}/esims/usage", endpoint("esims/usage", usage), methods=["GET"]),
        Route(f"{BASE}/esims/status", endpoint("esims/status", live_status), methods=["POST"]),
        Route(
            f"{BASE}/topup/packages", endpoint("topup/packages", topup_packages), methods=["GET"]
        ),
        Route(f"{BASE}/topup/order", endpoint("topup/order", topup_order), methods=["POST"]),
        Route(f"{BASE}/esims/cancel", endpoint("esims/cancel", cancel), methods=["POST"]),
    ]
    return Starlette(routes=routes), state
