"""A fake Airalo Partner API v2 upstream (wire format of /work/shared/providers/airalo.md).

It speaks the real shapes on purpose, quirks included: the ``{data, meta}`` envelope with the
``succes``/``api.succes`` typos, prices as decimals (strings in the order list), ``quantity`` as a
string in top-up answers, MB volumes, the three error body shapes, the ``test-*`` package ids that
trigger business codes, OAuth tokens (``POST /v2/token``, form or multipart, 3/min) and the
``airalo-signature`` check on POSTs by canonical re-serialisation. Like the real API it has **no
idempotency**: the same ``description`` twice is two orders.

Asynchronous orders (doc §5.3): ``POST /v2/orders-async`` validates like ``/v2/orders``, needs a
``webhook_url`` in the body or an opt-in (``state.async_opt_in_url``; otherwise 422
``{"reason": "User is not opted in and no webhook URL provided."}``), queues the request and
answers 202 ``{"data": {"request_id", "accepted_at"}, "meta": {"message": "success"}}`` with a
25-character nanoid. Nothing is bought until the test calls :meth:`FakeAiraloState.complete_async`,
which makes the orders (listed, so ``filter[description]`` finds them) and returns the signed
:class:`Delivery` per request that Airalo would POST to the webhook URL: the order body plus
``request_id`` at the top level (inside ``data`` when ``state.async_request_id_in_data``; the
notes leave the placement unverified), or ``{"request_id", "reason"}`` for a failure. The
``test-*`` package ids are accepted and fail at completion with their business reason (inferred
from the doc's failure example, whose reason is code 34's text). Deliveries are signed with
``airalo-signature`` = HMAC-SHA512(client secret, body), the body being the compact PHP-style
JSON (``/`` escaped) so the raw body and the SDK canonical form agree.

Fault injection: ``state.faults[endpoint] = mode`` where endpoint is one of ``token``,
``packages``, ``orders`` (POST), ``orders_async``, ``orders_list``, ``usage``, ``topups`` and
mode is one of ``"500"``, ``"429"`` (``Retry-After: state.retry_after``), ``"invalid_json"``,
``"schema"`` (valid JSON, wrong shape), ``"redirect"``, ``"business:<code>"``, ``"slow"`` (sleeps
``state.slow_seconds`` then answers), ``"commit_then_500"`` (does the work, then fails),
``"huge"`` (a body larger than 5 MiB), ``"401"`` (rejects the token once). For the async
deliveries, ``state.faults["async_webhook"]`` is ``"bad_signature"`` (signed with another
secret) or ``"sdk_form"`` (sent as Python's spaced ``json.dumps``, signed over the canonical
compact form, as the SDK samples do).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "client-id-example"
CLIENT_SECRET = "client-secret-example"

BUSINESS_REASONS = {
    11: "Insufficient Airalo credit: please top up.",
    13: "The operator is currently under maintenance.",
    14: "Invalid checksum: signature mismatch.",
    23: "Top-up is disabled by the operator for this eSIM.",
    33: "Insufficient eSIM stock: try later.",
    34: (
        "The requested eSIM package is invalid or it is currently out of stock. "
        "Please try again later."
    ),
    43: "Bad request.",
    53: "Unexpected error.",
    73: "eSIM has been recycled.",
    89: "IP is not allowed.",
}
NOT_OPTED_IN = "User is not opted in and no webhook URL provided."
NANOID_ALPHABET = string.ascii_letters + string.digits + "_-"
ACCEPTED_AT = "2026-11-22 10:00:00"
TEST_PACKAGES = {
    "test-insufficient-balance-7days-1gb": 11,
    "test-maintenance-mode-7days-1gb": 13,
    "test-disabled-top-up-7days-1gb": 23,
    "test-not-enough-7days-1gb": 33,
    "test-out-of-stock-7days-1gb": 34,
}


def _package(
    pid: str, *, kind: str = "sim", price: str, net: str, mb: int, days: int, title: str
) -> dict[str, Any]:
    return {
        "id": pid,
        "type": kind,
        "price": Decimal(price),
        "amount": mb,
        "day": days,
        "is_unlimited": mb == 0,
        "title": title,
        "short_info": "This eSIM doesn't come with a phone number.",
        "data": "Unlimited" if mb == 0 else f"{mb // 1024} GB" if mb >= 1024 else f"{mb} MB",
        "voice": None,
        "text": None,
        "net_price": Decimal(net),
        "prices": {"net_price": {"USD": Decimal(net)}},
    }


def default_catalogue() -> list[dict[str, Any]]:
    """Two pages' worth of regions: a country with a base, an unlimited and a top-up package, and
    a region; ``page`` is assigned by the fake (one region per page)."""
    us_countries = [{"country_code": "US", "title": "United States", "image": {}}]
    eu_countries = [
        {"country_code": "FR", "title": "France", "image": {}},
        {"country_code": "DE", "title": "Germany", "image": {}},
    ]
    return [
        {
            "slug": "united-states",
            "country_code": "US",
            "title": "United States",
            "image": {"width": 132, "height": 99, "url": "https://cdn.example/us.png"},
            "operators": [
                {
                    "id": 687,
                    "type": "local",
                    "title": "Change",
                    "esim_type": "Prepaid",
                    "is_roaming": True,
                    "plan_type": "data",
                    "activation_policy": "first-usage",
                    "rechargeability": True,
                    "coverages": [
                        {
                            "name": "US",
                            "code": "US",
                            "networks": [
                                {"name": "T-Mobile", "types": ["5G"]},
                                {"name": "Verizon", "types": ["5G"]},
                            ],
                        }
                    ],
                    "countries": us_countries,
                    "packages": [
                        _package(
                            "change-7days-1gb",
                            price="4.5",
                            net="1.1",
                            mb=1024,
                            days=7,
                            title="1 GB - 7 Days",
                        ),
                        _package(
                            "change-30days-unlimited",
                            price="29",
                            net="17.25",
                            mb=0,
                            days=30,
                            title="Unlimited - 30 Days",
                        ),
                        _package(
                            "change-7days-1gb-topup",
                            kind="topup",
                            price="4.5",
                            net="1.0505",
                            mb=1536,
                            days=7,
                            title="1.5 GB - 7 Days",
                        ),
                    ],
                }
            ],
        },
        {
            "slug": "europe",
            "country_code": "",
            "title": "Europe",
            "image": {},
            "operators": [
                {
                    "id": 12,
                    "type": "global",
                    "title": "Eurolink",
                    "rechargeability": "false",  # string booleans happen
                    "coverages": [],
                    "countries": eu_countries,
                    "packages": [
                        _package(
                            "eurolink-15days-3gb",
                            price="12.00",
                            net="6.3",
                            mb=3072,
                            days=15,
                            title="3 GB - 15 Days",
                        )
                    ],
                }
            ],
        },
    ]


@dataclass
class Sim:
    iccid: str
    package_id: str
    remaining_mb: Decimal | int = 0
    total_mb: Decimal | int = 0
    status: str = "NOT_ACTIVE"
    expired_at: str | None = None
    is_unlimited: bool = False
    topups: list[str] = field(default_factory=list)


@dataclass
class AsyncRequest:
    """One ``POST /v2/orders-async`` the fake accepted."""

    request_id: str
    package_id: str
    quantity: int
    description: Any
    webhook_url: str
    accepted_at: str = ACCEPTED_AT
    status: str = "pending"  # pending | completed | failed
    order_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Delivery:
    """The webhook POST Airalo would make with an async order's result, signed."""

    url: str
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any]

    async def send(self, client: httpx.AsyncClient, *, attempts: int = 20) -> list[int]:
        """POST until HTTP 200 (doc §6: only 200 counts; Airalo tries 20 times, 15 min apart,
        here back to back). Returns every status seen."""
        statuses: list[int] = []
        for _ in range(attempts):
            response = await client.post(self.url, content=self.body, headers=self.headers)
            statuses.append(response.status_code)
            if response.status_code == 200:
                break
        return statuses


@dataclass
class FakeAiraloState:
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    catalogue: list[dict[str, Any]] = field(default_factory=default_catalogue)
    tokens: set[str] = field(default_factory=set)
    token_times: list[float] = field(default_factory=list)
    token_limit_per_minute: int = 3
    token_expires_in: int = 31_622_400
    orders: list[dict[str, Any]] = field(default_factory=list)
    sims: dict[str, Sim] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    retry_after: str = "17"
    slow_seconds: float = 2.0
    calls: dict[str, int] = field(default_factory=dict)
    signatures_checked: int = 0
    last_bodies: dict[str, bytes] = field(default_factory=dict)
    async_opt_in_url: str | None = None  # POST /notifications/opt-in type async_orders
    async_requests: dict[str, AsyncRequest] = field(default_factory=dict)
    async_request_id_in_data: bool = False
    _next_id: int = 583747
    _next_iccid: int = 8944465400003573253

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def next_iccid(self) -> str:
        self._next_iccid += 1
        return str(self._next_iccid)

    def package(self, pid: str) -> dict[str, Any] | None:
        for region in self.catalogue:
            for operator in region["operators"]:
                for package in operator["packages"]:
                    if package["id"] == pid:
                        return dict(package)
        return None

    def place_order(
        self, package: dict[str, Any], quantity: int, description: Any
    ) -> dict[str, Any]:
        """Make a completed order of ``quantity`` eSIMs (the sync endpoint, or an async one
        when its request is completed) and list it."""
        pid = package["id"]
        oid = self.next_id()
        sims = []
        for _ in range(quantity):
            iccid = self.next_iccid()
            matching = f"M{oid}-{iccid[-4:]}"
            total = package["amount"]
            self.sims[iccid] = Sim(
                iccid,
                pid,
                remaining_mb=total,
                total_mb=total,
                is_unlimited=package["is_unlimited"],
            )
            sims.append(
                {
                    "id": int(iccid[-6:]),
                    "created_at": "2026-11-22 10:00:00",
                    "iccid": iccid,
                    "lpa": "lpa.airalo.com",
                    "imsis": None,
                    "matching_id": matching,
                    "qrcode": f"LPA:1$lpa.airalo.com${matching}",
                    "qrcode_url": "https://www.airalo.com/qr?id=1",
                    "confirmation_code": None,
                    "apn_type": "automatic",
                    "apn_value": None,
                    "is_roaming": True,
                }
            )
        order = {
            "id": oid,
            "code": f"20261122-{oid:06d}",
            "currency": "USD",
            "package_id": pid,
            "quantity": quantity,
            "type": "sim",
            "description": description,
            "esim_type": "Prepaid",
            "validity": package["day"],
            "package": package["title"],
            "data": package["data"],
            "price": package["price"],
            "net_price": package["net_price"],
            "created_at": "2026-11-22 10:00:00",
            "sims": sims,
            "status": {"name": "Completed", "slug": "completed"},
        }
        self.orders.append(order)
        return order

    def new_request_id(self) -> str:
        """A 25-character nanoid (``A-Za-z0-9_-``), as Airalo's ``request_id``."""
        while True:
            rid = "".join(secrets.choice(NANOID_ALPHABET) for _ in range(25))
            if rid not in self.async_requests:
                return rid

    def pending_async(self) -> list[AsyncRequest]:
        return [r for r in self.async_requests.values() if r.status == "pending"]

    def complete_async(
        self, request_id: str | None = None, *, failure: str | None = None
    ) -> list[Delivery]:
        """Process pending async requests (all, or the one named): make each order (or fail it
        with ``failure``, or with a ``test-*`` package's business reason) and return the signed
        deliveries Airalo would POST to each request's webhook URL."""
        deliveries = []
        for req in self.pending_async():
            if request_id is not None and req.request_id != request_id:
                continue
            package = self.package(req.package_id)
            code = TEST_PACKAGES.get(req.package_id)
            reason = failure or (BUSINESS_REASONS[code] if code is not None else None)
            if package is None and reason is None:
                reason = BUSINESS_REASONS[34]  # gone from the catalogue since it was accepted
            payload: dict[str, Any]
            if reason is not None or package is None:
                req.status, req.reason = "failed", reason
                payload = {"request_id": req.request_id, "reason": reason}
            else:
                order = self.place_order(package, req.quantity, req.description)
                req.status, req.order_id = "completed", order["id"]
                data = order_body(order, listing=False)
                if self.async_request_id_in_data:
                    payload = {"data": {**data, "request_id": req.request_id}}
                    payload["meta"] = {"message": "success"}
                else:
                    payload = {
                        "data": data,
                        "meta": {"message": "success"},
                        "request_id": req.request_id,
                    }
            deliveries.append(self.delivery(req.webhook_url, payload))
        return deliveries

    def delivery(self, url: str, payload: dict[str, Any]) -> Delivery:
        """``payload`` as Airalo would POST it: compact PHP-style JSON, signed over the body."""
        canonical = _canonical_body(payload)
        mode = self.faults.get("async_webhook")
        secret = "not-" + self.client_secret if mode == "bad_signature" else self.client_secret
        body = canonical
        if mode == "sdk_form":
            body = _DECIMAL.sub(r"\1", json.dumps(payload, default=_default)).encode()
        signature = hmac.new(secret.encode(), canonical, hashlib.sha512).hexdigest()
        headers = {"content-type": "application/json", "airalo-signature": signature}
        return Delivery(url, headers, body, payload)

    def set_usage(
        self,
        iccid: str,
        *,
        remaining_mb: Decimal | int,
        total_mb: Decimal | int,
        status: str,
        expired_at: str | None = None,
        is_unlimited: bool = False,
    ) -> None:
        sim = self.sims[iccid]
        sim.remaining_mb, sim.total_mb, sim.status = remaining_mb, total_mb, status
        sim.expired_at, sim.is_unlimited = expired_at, is_unlimited


_DECIMAL = re.compile(r'"__decimal__([-0-9.]+)__"')


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON with Decimals written as exact JSON numbers (``1.0505``, never a float repr)."""
    body = _DECIMAL.sub(r"\1", json.dumps(payload, default=_default))
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"__decimal__{format(value, 'f')}__"
    raise TypeError(type(value).__name__)


def _canonical_body(payload: Any) -> bytes:
    """Compact JSON, exact decimals, every ``/`` escaped (PHP ``json_encode``, SDK canonical)."""
    compact = json.dumps(payload, default=_default, separators=(",", ":"), ensure_ascii=False)
    return _DECIMAL.sub(r"\1", compact).replace("/", "\\/").encode()


def order_body(order: dict[str, Any], *, listing: bool) -> dict[str, Any]:
    """An order as the API shows it: by ``POST /orders`` (and the async webhook) or listed."""
    body = {k: v for k, v in order.items() if k not in ("status",)}
    if listing:
        body["price"] = format(order["price"], ".2f")  # strings in the list
        body["validity"] = str(order["validity"])
        body["status"] = order["status"]
    return body


def _business(code: int, status: int = 422) -> Response:
    return _json({"code": code, "reason": BUSINESS_REASONS.get(code, "error")}, status)


def _canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/")


def make_app(state: FakeAiraloState | None = None) -> tuple[Starlette, FakeAiraloState]:
    state = state or FakeAiraloState()

    async def fault(endpoint: str) -> Response | None:
        state.calls[endpoint] = state.calls.get(endpoint, 0) + 1
        mode = state.faults.get(endpoint)
        if mode is None:
            return None
        if mode == "slow":
            await asyncio.sleep(state.slow_seconds)
            return None
        if mode == "500":
            return _json({"message": "Server Error"}, 500)
        if mode == "429":
            return _json(
                {"message": "Too Many Attempts."},
                429,
                {"Retry-After": state.retry_after, "X-RateLimit-Remaining": "0"},
            )
        if mode == "invalid_json":
            return Response(b'{"data": {"id": 1,', media_type="application/json")
        if mode == "schema":
            return _json({"data": "nope", "meta": {"message": "success"}})
        if mode == "redirect":
            return RedirectResponse("https://elsewhere.example/login", status_code=302)
        if mode == "huge":
            return Response(b'{"pad":"' + b"x" * (6 * 1024 * 1024) + b'"}')
        if mode == "401":
            del state.faults[endpoint]
            state.tokens.clear()
            return _json({"data": [], "meta": {"message": "This action is unauthorized."}}, 401)
        if mode.startswith("business:"):
            code = int(mode.split(":", 1)[1])
            return _business(code, 403 if code == 89 else 422)
        return None  # "commit_then_500" is handled by the endpoint

    def authorised(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or header[7:] not in state.tokens:
            return _json({"data": [], "meta": {"message": "This action is unauthorized."}}, 401)
        if "application/json" not in request.headers.get("accept", ""):
            return _json({"data": [], "meta": {"message": "Accept header required"}}, 406)
        return None

    async def fields_of(request: Request) -> dict[str, Any]:
        body = await request.body()
        state.last_bodies[request.url.path] = body
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            parsed = json.loads(body)
            return parsed if isinstance(parsed, dict) else {}
        if kind.startswith("multipart/form-data"):
            form = await request.form()
            return {k: v for k, v in form.items() if isinstance(v, str)}
        return dict(parse_qsl(body.decode(), keep_blank_values=True))

    def signed(request: Request, fields: dict[str, Any]) -> Response | None:
        given = request.headers.get("airalo-signature", "")
        want = hmac.new(
            state.client_secret.encode(), _canonical(fields).encode(), hashlib.sha512
        ).hexdigest()
        state.signatures_checked += 1
        if not hmac.compare_digest(given, want):
            return _business(14)
        return None

    async def token(request: Request) -> Response:
        if (failure := await fault("token")) is not None:
            return failure
        now = time.monotonic()
        state.token_times = [t for t in state.token_times if now - t < 60]
        if len(state.token_times) >= state.token_limit_per_minute:
            return _json({"message": "Too Many Attempts."}, 429, {"Retry-After": "60"})
        state.token_times.append(now)
        fields = await fields_of(request)
        if fields.get("client_id") != state.client_id:
            return _json(
                {
                    "data": {"client_id": "The selected client id is invalid."},
                    "meta": {"message": "the parameter is invalid"},
                },
                422,
            )
        if fields.get("client_secret") != state.client_secret:
            return _json({"data": [], "meta": {"message": "Client authentication failed"}}, 401)
        access = f"tok-{len(state.tokens) + 1}-{int(now * 1000)}"
        state.tokens.add(access)
        return _json(
            {
                "data": {
                    "token_type": "Bearer",
                    "expires_in": state.token_expires_in,
                    "access_token": access,
                },
                "meta": {"message": "success"},
            }
        )

    async def packages(request: Request) -> Response:
        if (denied := authorised(request)) is not None:
            return denied
        if (failure := await fault("packages")) is not None:
            return failure
        with_topups = "topup" in request.query_params.get("include", "")
        page = int(request.query_params.get("page", "1"))
        regions = []
        for region in state.catalogue:
            copy = dict(region)
            copy["operators"] = [
                {
                    **op,
                    "packages": [p for p in op["packages"] if with_topups or p["type"] != "topup"],
                }
                for op in region["operators"]
            ]
            regions.append(copy)
        last = max(len(regions), 1)
        page_data = regions[page - 1 : page]  # one region per page: exercises paging
        # Docs: pages >= 2 may come as an object keyed by index.
        data: Any = {str(page - 1): page_data[0]} if page >= 2 and page_data else page_data
        return _json(
            {
                "data": data,
                "links": {"first": None, "last": None, "prev": None, "next": None},
                "meta": {
                    "message": "success",
                    "current_page": page,
                    "last_page": last,
                    "per_page": "1",
                    "total": len(regions),
                },
            }
        )

    def invalid_order(fields: dict[str, Any]) -> Response | None:
        """The validation answers both order endpoints share (``test-*`` ids are valid)."""
        pid = str(fields.get("package_id", ""))
        package = state.package(pid)
        if pid not in TEST_PACKAGES and (package is None or package["type"] == "topup"):
            return _json(
                {
                    "data": {"package_id": "The selected package is invalid."},
                    "meta": {"message": "the parameter is invalid"},
                },
                422,
            )
        quantity = int(fields.get("quantity", 1))
        if not 1 <= quantity <= 50:
            return _json(
                {
                    "data": {"quantity": "The quantity may not be greater than 50."},
                    "meta": {"message": "the parameter is invalid"},
                },
                422,
            )
        return None

    async def order_fields(request: Request, endpoint: str) -> dict[str, Any] | Response:
        """The fields of an authorised, signed order request; or the refusal to send."""
        if (denied := authorised(request)) is not None:
            return denied
        if (failure := await fault(endpoint)) is not None:
            return failure
        fields = await fields_of(request)
        if (bad := signed(request, fields)) is not None:
            return bad
        return fields

    async def create_order(request: Request) -> Response:
        fields = await order_fields(request, "orders")
        if isinstance(fields, Response):
            return fields
        pid = str(fields.get("package_id", ""))
        if pid in TEST_PACKAGES:
            return _business(TEST_PACKAGES[pid])
        if (invalid := invalid_order(fields)) is not None:
            return invalid
        package = state.package(pid)
        assert package is not None
        quantity = int(fields.get("quantity", 1))
        order = state.place_order(package, quantity, fields.get("description"))
        if state.faults.get("orders") == "commit_then_500":
            return _json({"message": "Server Error"}, 500)
        return _json({"data": order_body(order, listing=False), "meta": {"message": "success"}})

    async def create_order_async(request: Request) -> Response:
        fields = await order_fields(request, "orders_async")
        if isinstance(fields, Response):
            return fields
        webhook_url = str(fields.get("webhook_url") or "") or state.async_opt_in_url
        if not webhook_url:
            return _json({"reason": NOT_OPTED_IN}, 422)
        if (invalid := invalid_order(fields)) is not None:
            return invalid
        rid = state.new_request_id()
        state.async_requests[rid] = AsyncRequest(
            request_id=rid,
            package_id=str(fields.get("package_id", "")),
            quantity=int(fields.get("quantity", 1)),
            description=fields.get("description"),
            webhook_url=webhook_url,
        )
        if state.faults.get("orders_async") == "commit_then_500":
            return _json({"message": "Server Error"}, 500)
        return _json(
            {
                "data": {"request_id": rid, "accepted_at": ACCEPTED_AT},
                "meta": {"message": "success"},
            },
            202,
        )

    async def list_orders(request: Request) -> Response:
        if (denied := authorised(request)) is not None:
            return denied
        if (failure := await fault("orders_list")) is not None:
            return failure
        like = request.query_params.get("filter[description]")
        matches = [
            o for o in state.orders if like is None or like in str(o.get("description") or "")
        ]
        limit = int(request.query_params.get("limit", "50"))
        page = int(request.query_params.get("page", "1"))
        chunk = matches[(page - 1) * limit : page * limit]
        return _json(
            {
                "data": [order_body(o, listing=True) for o in chunk],
                "links": {},
                "meta": {
                    "message": "success",
                    "current_page": page,
                    "last_page": max(1, -(-len(matches) // limit)),
                    "per_page": str(limit),
                    "total": len(matches),
                },
            }
        )

    async def usage(request: Request) -> Response:
        if (denied := authorised(request)) is not None:
            return denied
        if (failure := await fault("usage")) is not None:
            return failure
        sim = state.sims.get(request.path_params["iccid"])
        if sim is None:
            return _json({"data": [], "meta": {"message": "messages.resource_not_found"}}, 404)
        if sim.status == "RECYCLED":
            data: dict[str, Any] = {
                "remaining": None,
                "total": None,
                "expired_at": None,
                "is_unlimited": None,
                "status": "RECYCLED",
            }
        else:
            data = {
                "remaining": sim.remaining_mb,
                "total": sim.total_mb,
                "expired_at": sim.expired_at,
                "is_unlimited": sim.is_unlimited,
                "status": sim.status,
                "remaining_voice": 0,
                "remaining_text": 0,
                "total_voice": 0,
                "total_text": 0,
            }
        return _json({"data": data, "meta": {"message": "api.succes"}})

    async def topup(request: Request) -> Response:
        if (denied := authorised(request)) is not None:
            return denied
        if (failure := await fault("topups")) is not None:
            return failure
        fields = await fields_of(request)
        if (bad := signed(request, fields)) is not None:
            return bad
        sim = state.sims.get(str(fields.get("iccid", "")))
        if sim is None:
            return _json(
                {
                    "data": {"iccid": "The selected iccid is invalid."},
                    "meta": {"message": "the parameter is invalid"},
                },
                422,
            )
        if sim.status == "RECYCLED":
            return _business(73)
        if sim.package_id in TEST_PACKAGES or sim.package_id.startswith("test-disabled"):
            return _business(23)
        package = state.package(str(fields.get("package_id", "")))
        if package is None or package["type"] != "topup":
            return _json(
                {
                    "data": {"package_id": "invalid topup package"},
                    "meta": {"message": "the parameter is invalid"},
                },
                422,
            )
        sim.topups.append(package["id"])
        sim.total_mb = Decimal(sim.total_mb) + package["amount"]
        sim.remaining_mb = Decimal(sim.remaining_mb) + package["amount"]
        oid = state.next_id()
        order = {
            "package_id": package["id"],
            "quantity": "1",
            "type": "topup",
            "description": fields.get("description"),
            "esim_type": "Prepaid",
            "validity": package["day"],
            "package": package["title"],
            "data": package["data"],
            "price": package["price"],
            "net_price": package["net_price"],
            "created_at": "2026-11-22 11:00:00",
            "id": oid,
            "code": f"20261122-{oid:06d}",
            "currency": "USD",
            "manual_installation": "",
            "qrcode_installation": "",
            "installation_guides": {"en": "https://example/guide"},
        }
        # Listed among orders (type topup) so a lookup by description finds it (inferred).
        state.orders.append(
            {**order, "sims": [], "status": {"name": "Completed", "slug": "completed"}}
        )
        if state.faults.get("topups") == "commit_then_500":
            return _json({"message": "Server Error"}, 500)
        return _json({"data": order, "meta": {"message": "success"}})

    app = Starlette(
        routes=[
            Route("/v2/token", token, methods=["POST"]),
            Route("/v2/packages", packages, methods=["GET"]),
            Route("/v2/orders", create_order, methods=["POST"]),
            Route("/v2/orders", list_orders, methods=["GET"]),
            Route("/v2/orders-async", create_order_async, methods=["POST"]),
            Route("/v2/orders/topups", topup, methods=["POST"]),
            Route("/v2/sims/{iccid}/usage", usage, methods=["GET"]),
        ]
    )
    return app, state
