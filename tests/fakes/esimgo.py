"""A fake eSIM Go v2.5 upstream (Starlette), speaking its real wire format.

* ``X-API-Key`` required (403 ``{"message": "Unauthorised"}`` otherwise);
* ``GET /catalogue`` in the live ``{bundles, pageCount, rows, pageSize}`` envelope, prices as
  JSON decimals, ``dataAmount`` in decimal MB;
* ``POST /orders`` ``validate`` (free) / ``transaction`` (charges the balance, creates eSIMs,
  ``status: "completed"``) — with **no idempotency**, like the real one;
* ``GET /orders/{ref}`` with the doc's ``AllowReassign`` capital-A quirk;
* ``GET /esims/assignments`` (JSON), ``GET/PUT /esims`` (``customerRef``), ``GET /esims/{iccid}``
  (``firstInstalledDateTime`` in epoch ms), ``GET /esims/{iccid}/bundles`` (bytes, ``bundleState``;
  new assignments are ``processing`` on their first read, then ``queued``),
  ``GET /esims/{iccid}/compatible/{bundle}``, ``GET /esims/{iccid}/location``
  (``{mobileNetworkCode, networkName, networkBrandName, country, lastSeen}``, the PLMN as one
  string; 404 ``{"message": …}`` for an eSIM that never attached — the wire notes are silent on
  that case, so the fake picks the plainest answer);
* fault injection per endpoint (see :data:`MODES`), and V3 callbacks signed like the real one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

Mode = Literal[
    "ok",
    "http_500",
    "http_500_after_commit",
    "http_429",
    "http_503",
    "invalid_json",
    "schema",
    "redirect",
    "business_error",
    "slow",
]
MODES: tuple[Mode, ...] = (
    "ok",
    "http_500",
    "http_500_after_commit",
    "http_429",
    "http_503",
    "invalid_json",
    "schema",
    "redirect",
    "business_error",
    "slow",
)
API_KEY = "test-esimgo-key"
SMDP = "rsp.fake-esimgo.test"


def _bundle(
    name: str,
    description: str,
    countries: list[tuple[str, str, str]],
    mb: int,
    days: int,
    price: float,
    group: str = "Standard Fixed",
    unlimited: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "countries": [{"name": n, "region": r, "iso": iso} for iso, n, r in countries],
        "dataAmount": -1 if unlimited else mb,
        "duration": days,
        "speed": ["4G", "5G"],
        "autostart": True,
        "unlimited": unlimited,
        "imageUrl": "https://example.invalid/x.jpg",
        "price": price,
        "groups": [group],
        "billingType": "FixedCost",
        "allowances": [
            {
                "type": "DATA",
                "service": "ROAMING",
                "description": f"{name} (data)",
                "amount": mb,
                "unit": "MB",
                "unlimited": unlimited,
            }
        ],
    }


GB, FR, DE = (
    ("GB", "United Kingdom", "Europe"),
    ("FR", "France", "Europe"),
    ("DE", "Germany", "Europe"),
)
DEFAULT_BUNDLES: list[dict[str, Any]] = [
    _bundle("esim_1GB_7D_GB_V2", "eSIM, 1GB, 7 Days, United Kingdom, V2", [GB], 1000, 7, 1.7),
    _bundle("esim_5GB_30D_EU_V3", "eSIM, 5GB, 30 Days, Europe, V3", [GB, FR, DE], 5000, 30, 9.99),
    _bundle(
        "esim_UL_1D_GB_V2",
        "eSIM, Unlimited Lite, 1 Day, United Kingdom",
        [GB],
        1000,
        1,
        2.05,
        group="Standard Unlimited Lite",
        unlimited=True,
    ),
    _bundle(
        "esim_topup_1GB_7D_GB",
        "Top-up, 1GB, 7 Days, United Kingdom",
        [GB],
        1000,
        7,
        1.5,
        group="Top-up",
    ),
]


@dataclass
class FakeEsim:
    iccid: str
    matching_id: str
    profile_status: str = "Released"
    customer_ref: str | None = None
    first_installed_ms: int | None = None
    location: dict[str, Any] | None = None  # the wire body of GET /esims/{iccid}/location
    # bundle name → assignments (wire dicts), oldest first
    bundles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class FakeState:
    api_key: str = API_KEY
    balance: float = 1000.0
    bundles: list[dict[str, Any]] = field(
        default_factory=lambda: [dict(b) for b in DEFAULT_BUNDLES]
    )
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    esims: dict[str, FakeEsim] = field(default_factory=dict)
    faults: dict[str, Mode] = field(default_factory=dict)
    fault_message: str = "Insufficient balance to complete this order"
    retry_after: str = "7"
    slow_seconds: float = 0.2
    omit_esims_in_order: bool = False  # the doc: esims[] may be absent from the order answer
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    _iccids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _assignment_ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(215009266)
    )

    # --- test controls ------------------------------------------------------------------------

    def fault(self, endpoint: str, mode: Mode) -> None:
        """Make an endpoint misbehave (``orders:transaction``/``orders:validate`` for one type)."""
        self.faults[endpoint] = mode

    def clear_faults(self) -> None:
        self.faults.clear()

    def transactions(self) -> list[Any]:
        return [
            body
            for method, path, body in self.requests
            if method == "POST" and path.endswith("/orders") and body.get("type") == "transaction"
        ]

    def assignment(self, iccid: str, bundle: str | None = None) -> dict[str, Any]:
        esim = self.esims[iccid]
        name = bundle or next(iter(esim.bundles))
        return esim.bundles[name][-1]

    def use(self, iccid: str, used_bytes: int, bundle: str | None = None) -> None:
        """The device used data: the assignment becomes active (or depleted)."""
        a = self.assignment(iccid, bundle)
        a["remainingQuantity"] = max(a["initialQuantity"] - used_bytes, 0)
        a["bundleState"] = "depleted" if a["remainingQuantity"] == 0 else "active"
        a.setdefault("startTime", "2026-01-02T15:04:05.123456789Z")
        a.setdefault("endTime", "2026-01-09T15:04:05.123456789Z")

    def set_state(self, iccid: str, state: str, bundle: str | None = None) -> None:
        self.assignment(iccid, bundle)["bundleState"] = state

    def set_profile(self, iccid: str, status: str, installed_ms: int | None = None) -> None:
        esim = self.esims[iccid]
        esim.profile_status = status
        if installed_ms is not None:
            esim.first_installed_ms = installed_ms

    def set_location(
        self,
        iccid: str,
        *,
        mcc: str = "234",
        mnc: str = "10",
        name: str = "O2 - UK",
        brand: str | None = "O2 UK",
        country: str = "GB",
        last_seen: str = "2026-01-02T15:04:05.123456789Z",
    ) -> dict[str, Any]:
        """The network saw the eSIM: ``GET …/location`` answers this (``brand=None`` omits
        ``networkBrandName``); returns the wire body."""
        body: dict[str, Any] = {
            "mobileNetworkCode": f"{mcc}{mnc}",
            "networkName": name,
            "networkBrandName": brand,
            "country": country,
            "lastSeen": last_seen,
        }
        if brand is None:
            del body["networkBrandName"]
        self.esims[iccid].location = body
        return body

    def callback(self, iccid: str, *, numeric_iccid: bool = True) -> tuple[bytes, dict[str, str]]:
        """A V3 Utilisation callback body and its signed headers (ICCID as a JSON number)."""
        a = self.assignment(iccid)
        name = next(n for n, items in self.esims[iccid].bundles.items() if a in items)
        iccid_json = iccid if numeric_iccid else json.dumps(iccid)
        bundle = json.dumps(
            {
                "id": a["id"],
                "reference": a["assignmentReference"],
                "name": name,
                "initialQuantity": a["initialQuantity"],
                "remainingQuantity": a["remainingQuantity"],
                "unlimited": a["unlimited"],
            },
            separators=(",", ":"),
        )
        body = f'{{"iccid":{iccid_json},"alertType":"Utilisation","bundle":{bundle}}}'.encode()
        signature = base64.b64encode(hmac.new(self.api_key.encode(), body, hashlib.sha256).digest())
        return body, {"X-Signature-SHA256": signature.decode()}

    # --- internals ----------------------------------------------------------------------------

    def bundle(self, name: str) -> dict[str, Any] | None:
        return next((b for b in self.bundles if b["name"] == name), None)

    def new_iccid(self) -> str:
        return f"89440000{next(self._iccids):011d}"

    def assign(self, esim: FakeEsim, bundle: dict[str, Any], order_ref: str, index: int) -> None:
        initial = bundle["dataAmount"] * 1_000_000 if not bundle["unlimited"] else 0
        esim.bundles.setdefault(bundle["name"], []).append(
            {
                "id": str(next(self._assignment_ids)),
                "callTypeGroup": "data",
                "initialQuantity": initial,
                "remainingQuantity": initial,
                "assignmentDateTime": "2026-01-01T10:47:00.34523Z",
                "assignmentReference": f"{order_ref}-{index}",
                "bundleState": "processing",
                "unlimited": bundle["unlimited"],
                "_reads": 0,
            }
        )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def make_app(api_key: str = API_KEY) -> tuple[Starlette, FakeState]:
    state = FakeState(api_key=api_key)

    async def guard(request: Request, endpoint: str, body: Any = None) -> Response | None:
        state.requests.append((request.method, request.url.path, body))
        if request.headers.get("x-api-key") != state.api_key:
            return _error(403, "Unauthorised")
        kind = body.get("type") if isinstance(body, dict) else None
        mode = state.faults.get(f"{endpoint}:{kind}") or state.faults.get(endpoint, "ok")
        if mode == "slow":
            await asyncio.sleep(state.slow_seconds)
        if mode == "http_500":
            return _error(500, "Internal Server Error")
        if mode in ("http_429", "http_503"):
            status = 429 if mode == "http_429" else 503
            return _error(status, "Too many requests", {"Retry-After": state.retry_after})
        if mode == "invalid_json":
            return Response(b'{"bundles": [', media_type="application/json")
        if mode == "schema":
            return JSONResponse({"bundles": "nope", "order": 7, "esims": 3, "compatible": []})
        if mode == "redirect":
            return RedirectResponse("https://login.example.invalid/", status_code=302)
        if mode == "business_error":
            return _error(400, state.fault_message)
        return None

    def after_commit(endpoint: str, kind: str | None = None) -> Response | None:
        mode = state.faults.get(f"{endpoint}:{kind}") or state.faults.get(endpoint)
        return _error(500, "Internal Server Error") if mode == "http_500_after_commit" else None

    async def catalogue(request: Request) -> Response:
        if (refused := await guard(request, "catalogue")) is not None:
            return refused
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("perPage", "50"))
        rows = len(state.bundles)
        chunk = state.bundles[(page - 1) * per_page : page * per_page]
        return JSONResponse(
            {
                "bundles": chunk,
                "pageCount": max(1, -(-rows // per_page)),
                "rows": rows,
                "pageSize": per_page,
            }
        )

    def priced_lines(order: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float] | Response:
        lines, total = [], 0.0
        for item in order:
            bundle = state.bundle(str(item.get("item")))
            if bundle is None:
                return _error(400, f"Bundle not found: {item.get('item')}")
            quantity = int(item.get("quantity", 0))
            iccids = [str(i) for i in item.get("iccids") or []]
            if iccids and len(iccids) != quantity:
                return _error(400, "quantity must equal the number of iccids")
            for iccid in iccids:
                if iccid not in state.esims:
                    return _error(403, "ICCID not accessible")
            price = bundle["price"]
            lines.append(
                {
                    "type": "bundle",
                    "item": bundle["name"],
                    "quantity": quantity,
                    "subTotal": round(price * quantity, 4),
                    "pricePerUnit": price,
                    "allowReassign": bool(item.get("allowReassign", False)),
                    "_iccids": iccids,
                }
            )
            total += price * quantity
        return lines, round(total, 4)

    async def orders(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "Bad request format")
        if (refused := await guard(request, "orders", body)) is not None:
            return refused
        priced = priced_lines(body.get("order") or [])
        if isinstance(priced, Response):
            return priced
        lines, total = priced
        kind = body.get("type")
        if kind == "validate":
            for line in lines:
                line.pop("_iccids")
            return JSONResponse(
                {
                    "order": lines,
                    "total": total,
                    "valid": True,
                    "currency": "USD",
                    "createdDate": "2026-01-01T10:30:45.123456789Z",
                    "assigned": False,
                }
            )
        if kind != "transaction":
            return _error(400, "Bad request format")
        if total > state.balance:
            return _error(400, "Insufficient balance to complete this order")
        state.balance -= total
        reference = str(uuid.uuid4())
        for line in lines:
            bundle = state.bundle(line["item"])
            assert bundle is not None
            targets = line.pop("_iccids") or [None] * line["quantity"]
            esims = []
            for index, iccid in enumerate(targets):
                if iccid is None:
                    esim = FakeEsim(state.new_iccid(), f"AB-{uuid.uuid4().hex[:12].upper()}")
                    state.esims[esim.iccid] = esim
                else:
                    esim = state.esims[iccid]
                state.assign(esim, bundle, reference, index)
                esims.append(
                    {"iccid": esim.iccid, "matchingId": esim.matching_id, "smdpAddress": SMDP}
                )
            line["iccids"] = [e["iccid"] for e in esims]
            if not state.omit_esims_in_order:
                line["esims"] = esims
        count = sum(len(x["iccids"]) for x in lines)
        order = {
            "order": lines,
            "total": total,
            "currency": "USD",
            "status": "completed",
            "statusMessage": f"Order completed: {count} eSIMs assigned",
            "orderReference": reference,
            "createdDate": "2026-01-01T10:30:45.123456789Z",
            "assigned": True,
            "sourceIP": "203.0.113.10",
        }
        state.orders[reference] = order
        if (failed := after_commit("orders", "transaction")) is not None:
            return failed
        return JSONResponse(order)

    async def order_detail(request: Request) -> Response:
        if (refused := await guard(request, "order")) is not None:
            return refused
        order = state.orders.get(request.path_params["ref"])
        if order is None:
            return _error(404, "Order not found")
        quirky = json.loads(json.dumps(order))
        for line in quirky["order"]:
            line["AllowReassign"] = line.pop("allowReassign")  # the doc example's spelling
        return JSONResponse(quirky)

    async def assignments(request: Request) -> Response:
        if (refused := await guard(request, "assignments")) is not None:
            return refused
        order = state.orders.get(request.query_params.get("reference", ""))
        if order is None:
            return _error(404, "Reference not found")
        if request.headers.get("accept", "").split(",")[0].strip() != "application/json":
            rows = [
                f"{i},{state.esims[i].matching_id},{SMDP}"
                for line in order["order"]
                for i in line["iccids"]
            ]
            return Response("ICCID,Matching ID,RSP URL\n" + "\n".join(rows), media_type="text/csv")
        items = [
            {
                "iccid": state.esims[i].iccid,
                "matchingId": state.esims[i].matching_id,
                "smdpAddress": SMDP,
                "profileStatus": state.esims[i].profile_status,
                "pin": "1234",
                "puk": "12345678",
            }
            for line in order["order"]
            for i in line["iccids"]
        ]
        return JSONResponse(items[0] if len(items) == 1 else items)

    async def esims(request: Request) -> Response:
        if request.method == "PUT":
            body = json.loads(await request.body())
            if (refused := await guard(request, "esims_update", body)) is not None:
                return refused
            esim = state.esims.get(str(body.get("iccid")))
            if esim is None:
                return _error(403, "ICCID not accessible")
            esim.customer_ref = str(body.get("customerRef"))
            return JSONResponse({"status": "Successfully updated eSIM"})
        if (refused := await guard(request, "esims_list")) is not None:
            return refused
        items = list(state.esims.values())
        if request.query_params.get("filterBy") == "customerRef":
            wanted = request.query_params.get("filter", "")
            items = [e for e in items if e.customer_ref == wanted]
        return JSONResponse(
            {
                "esims": [
                    {
                        "iccid": e.iccid,
                        "customerRef": e.customer_ref or "",
                        "lastAction": "Bundle Applied",
                        "actionDate": "2026-01-01T10:47:00.34523Z",
                        "physical": "false",  # string boolean
                        "assignedDate": "2026-01-01T10:47:00.34523Z",
                    }
                    for e in items
                ]
            }
        )

    def find(request: Request) -> FakeEsim | None:
        return state.esims.get(request.path_params["iccid"])

    async def esim_detail(request: Request) -> Response:
        if (refused := await guard(request, "esim")) is not None:
            return refused
        esim = find(request)
        if esim is None:
            return _error(403, "ICCID not accessible")
        return JSONResponse(
            {
                "iccid": esim.iccid,
                "pin": "0000",
                "puk": "12345678",
                "matchingId": esim.matching_id,
                "smdpAddress": SMDP,
                "profileStatus": esim.profile_status,
                "firstInstalledDateTime": esim.first_installed_ms,
                "customerRef": esim.customer_ref or "",
            }
        )

    async def esim_bundles(request: Request) -> Response:
        if (refused := await guard(request, "esim_bundles")) is not None:
            return refused
        esim = find(request)
        if esim is None:
            return _error(403, "ICCID not accessible")
        out = []
        for name, items in esim.bundles.items():
            bundle = state.bundle(name) or {"description": ""}
            wire = []
            for a in reversed(items):  # latest first
                a["_reads"] += 1
                if a["bundleState"] == "processing" and a["_reads"] > 1:
                    a["bundleState"] = "queued"
                wire.append({k: v for k, v in a.items() if not k.startswith("_")})
            out.append({"name": name, "description": bundle["description"], "assignments": wire})
        return JSONResponse({"bundles": out})

    async def location(request: Request) -> Response:
        if (refused := await guard(request, "location")) is not None:
            return refused
        esim = find(request)
        if esim is None:
            return _error(403, "ICCID not accessible")
        if esim.location is None:
            return _error(404, "No location found for this eSIM")
        return JSONResponse(esim.location)

    async def compatible(request: Request) -> Response:
        if (refused := await guard(request, "compatible")) is not None:
            return refused
        esim = find(request)
        bundle = state.bundle(request.path_params["bundle"])
        if esim is None:
            return _error(403, "ICCID not accessible")
        if bundle is None:
            return _error(400, f"Bundle not found: {request.path_params['bundle']}")
        wanted = {c["iso"] for c in bundle["countries"]}
        have = {
            c["iso"]
            for name in esim.bundles
            for c in (state.bundle(name) or {"countries": []})["countries"]
        }
        return JSONResponse({"compatible": wanted <= have})

    app = Starlette(
        routes=[
            Route("/v2.5/catalogue", catalogue),
            Route("/v2.5/orders", orders, methods=["POST"]),
            Route("/v2.5/orders/{ref}", order_detail),
            Route("/v2.5/esims/assignments", assignments),
            Route("/v2.5/esims", esims, methods=["GET", "PUT"]),
            Route("/v2.5/esims/{iccid}", esim_detail),
            Route("/v2.5/esims/{iccid}/bundles", esim_bundles),
            Route("/v2.5/esims/{iccid}/location", location),
            Route("/v2.5/esims/{iccid}/compatible/{bundle}", compatible),
        ]
    )
    return app, state
