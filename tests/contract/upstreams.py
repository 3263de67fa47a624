"""The six upstreams of the contract suite, each behind one small driver.

A driver knows how to stand its upstream up (the fake app served on loopback, or the built-in
simulator on a scratch database), builds the adapter through the same factory and credentials
as a configured provider account, and plays the upstream's part where a test needs it: finish
an asynchronous order, report usage, count what was really bought, send a webhook exactly as
that upstream signs it. The scenarios themselves (test_contract.py) know nothing of any one
upstream.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from esimgate.clock import FrozenClock
from esimgate.db.base import Base
from esimgate.db.engine import create_engine, session_factory
from esimgate.providers.base import Provider, ProviderPackage, Purchase
from esimgate.providers.registry import FACTORIES, AdapterConfig
from esimgate.providers.simulator.adapter import SimulatorProvider
from esimgate.providers.simulator.catalogue import ASYNC_PROVISIONING_COUNTRIES
from esimgate.providers.simulator.models import SIMULATOR_TABLES, SimOrder, SimTopUp
from tests.e2e.test_upstreams_over_http import serve, stop
from tests.fakes import airalo, esimaccess, esimfly, esimgo, simplifytrip

MIB = 1024**2
WEBHOOK_SECRET = "contract-webhook-secret"


@dataclass
class Webhook:
    headers: dict[str, str]
    body: bytes
    client_ip: str = "203.0.113.7"


class Driver:
    """One upstream as the contract suite drives it."""

    kind: str
    synchronous = True  # some package completes at once
    asynchronous = False  # some package answers PENDING first
    topups = True  # sells top-ups for its eSIMs
    cancels = True  # cancels unused eSIMs for a refund

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.provider: Provider | None = None

    @asynccontextmanager
    async def running(self, tmp_path: Path) -> AsyncIterator[None]:
        yield

    def build(self) -> Provider:
        """A new adapter for the same upstream account: a new process, as far as it knows."""
        raise NotImplementedError

    def sync_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        raise NotImplementedError

    def async_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        raise NotImplementedError

    def complete(self) -> None:
        """The upstream finishes every pending order."""

    async def set_usage(self, iccid: str) -> int:
        """The upstream now reports usage for ``iccid``; returns it in bytes."""
        raise NotImplementedError

    async def orders_booked(self) -> int:
        """How many orders the upstream has really booked (and charged us for)."""
        raise NotImplementedError

    async def topups_booked(self) -> int:
        raise NotImplementedError

    def webhook(self, purchase: Purchase) -> Webhook:
        """A genuine notification about ``purchase``, exactly as the upstream sends it."""
        raise NotImplementedError


def _first(packages: Sequence[ProviderPackage], test: Callable[[ProviderPackage], bool]) -> Any:
    found = [p for p in packages if not p.is_topup and test(p)]
    assert found, "the upstream lists no such package"
    return min(found, key=lambda p: (p.cost.amount_e4, p.provider_code))


class _Fake(Driver):
    """A fake upstream app served on 127.0.0.1 and an adapter built by its factory."""

    prefix = ""

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.app, self.state = self.make()
        self.base_url = ""

    def make(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def credentials(self) -> dict[str, str]:
        raise NotImplementedError

    @asynccontextmanager
    async def running(self, tmp_path: Path) -> AsyncIterator[None]:
        server, task, port = await serve(self.app)
        self.base_url = f"http://127.0.0.1:{port}{self.prefix}"
        try:
            yield
        finally:
            await stop(server, task)

    def build(self) -> Provider:
        config = AdapterConfig(
            f"contract-{self.kind}",
            self.base_url,
            self.credentials(),
            self.clock,
            None,  # type: ignore[arg-type]
        )
        return FACTORIES[self.kind](config)

    def sync_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        return _first(packages, lambda p: True)


class EsimAccess(_Fake):
    kind = "esimaccess"
    prefix = "/api/v1/open"
    asynchronous = True

    def make(self) -> tuple[Any, Any]:
        return esimaccess.make_app()

    def credentials(self) -> dict[str, str]:
        return {"access_code": self.state.access_code, "secret_key": self.state.secret_key}

    def sync_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        self.state.allocation_polls = 0  # profiles allocated at once
        return super().sync_package(packages)

    def async_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        self.state.allocation_polls = 1_000  # allocated only when the test says so
        return super().sync_package(packages)

    def complete(self) -> None:
        for order in self.state.orders.values():
            self.state.allocate(order.order_no)

    async def set_usage(self, iccid: str) -> int:
        esim = next(e for e in self.state.esims.values() if e.iccid == iccid)
        used = 123 * MIB + 456  # eSIM Access reports bytes
        self.state.set_usage(esim.esim_tran_no, used)
        return used

    async def orders_booked(self) -> int:
        return len(self.state.orders)

    async def topups_booked(self) -> int:
        return len(self.state.topups)

    def webhook(self, purchase: Purchase) -> Webhook:
        # eSIM Access does not sign: it is recognised by its published sender addresses.
        order = self.state.order_by_no(purchase.provider_order_id)
        body = {
            "notifyType": "ORDER_STATUS",
            "notifyId": uuid.uuid4().hex,
            "eventGenerateTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "content": {
                "orderNo": order.order_no,
                "orderStatus": "GOT_RESOURCE",
                "transactionId": order.transaction_id,
            },
        }
        return Webhook(
            {"content-type": "application/json"}, json.dumps(body).encode(), "18.136.190.97"
        )


class Airalo(_Fake):
    kind = "airalo"
    prefix = "/v2"
    cancels = False  # refunds are manual requests

    def make(self) -> tuple[Any, Any]:
        return airalo.make_app()

    def credentials(self) -> dict[str, str]:
        return {"client_id": airalo.CLIENT_ID, "client_secret": airalo.CLIENT_SECRET}

    async def set_usage(self, iccid: str) -> int:
        sim = self.state.sims[iccid]
        total = int(sim.total_mb) or 1024
        self.state.set_usage(iccid, remaining_mb=total - 300, total_mb=total, status="ACTIVE")
        return 300 * MIB  # Airalo's MB are binary

    async def orders_booked(self) -> int:
        return sum(1 for o in self.state.orders if str(o.get("type", "")).lower() != "topup")

    async def topups_booked(self) -> int:
        return sum(1 for o in self.state.orders if str(o.get("type", "")).lower() == "topup")

    def webhook(self, purchase: Purchase) -> Webhook:
        # The async-order result delivery: the order body, signed over the raw bytes with
        # HMAC-SHA512 of the client secret (airalo-signature).
        order = next(o for o in self.state.orders if str(o.get("id")) == purchase.provider_order_id)
        body = json.dumps(
            {
                "request_id": uuid.uuid4().hex[:25],
                "data": {
                    "id": order.get("id"),
                    "code": order.get("code"),
                    "description": order.get("description"),
                    "sims": [{"iccid": e.iccid} for e in purchase.esims],
                },
                "meta": {"message": "success"},
            }
        ).encode()
        signature = hmac.new(airalo.CLIENT_SECRET.encode(), body, hashlib.sha512).hexdigest()
        return Webhook({"content-type": "application/json", "airalo-signature": signature}, body)


class AiraloAsync(Airalo):
    """The same Airalo account with asynchronous orders turned on (POST /orders-async)."""

    synchronous = False
    asynchronous = True

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.deliveries: dict[str, airalo.Delivery] = {}

    def credentials(self) -> dict[str, str]:
        return super().credentials() | {
            "async_orders": "true",
            "webhook_url": "https://gateway.example/api/v1/providers/airalo/webhooks",
        }

    def async_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        return super().sync_package(packages)

    def complete(self) -> None:
        for delivery in self.state.complete_async():
            self.deliveries[str(delivery.payload.get("data", {}).get("description"))] = delivery

    def webhook(self, purchase: Purchase) -> Webhook:
        # What Airalo POSTed with the order's result, exactly as the fake signed it.
        delivery = self.deliveries[purchase.reference]
        return Webhook(dict(delivery.headers), delivery.body)


class SimplifyTrip(_Fake):
    kind = "simplifytrip"
    prefix = "/api/v1"
    synchronous = False  # every order is fulfilled later
    asynchronous = True
    topups = False  # no top-up endpoint was found in its docs

    def make(self) -> tuple[Any, Any]:
        return simplifytrip.make_app()

    def credentials(self) -> dict[str, str]:
        return {
            "apiKey": simplifytrip.API_KEY,
            "secretKey": simplifytrip.SECRET_KEY,
            "checksumKey": simplifytrip.CHECKSUM_KEY,
        }

    def async_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        return super().sync_package(packages)

    def complete(self) -> None:
        for track_id, order in list(self.state.orders.items()):
            if order.status != "SUCCESS":
                self.state.fulfil(track_id)

    async def set_usage(self, iccid: str) -> int:
        used = 200 * MIB + 1
        self.state.set_usage(iccid, used=used, plan_status="ACTIVE")
        return used

    async def orders_booked(self) -> int:
        return len(self.state.orders)

    def webhook(self, purchase: Purchase) -> Webhook:
        headers, body = self.state.webhook(purchase.reference)
        return Webhook({k.lower(): v for k, v in headers.items()}, body)


class EsimGo(_Fake):
    kind = "esimgo"
    prefix = "/v2.5"
    cancels = False  # refunds are off by default upstream

    def make(self) -> tuple[Any, Any]:
        return esimgo.make_app()

    def credentials(self) -> dict[str, str]:
        return {"api_key": esimgo.API_KEY, "order_spacing_seconds": "0"}

    async def set_usage(self, iccid: str) -> int:
        used = 300_000_000  # eSIM Go counts decimal units: 300 MB = 300 000 000 bytes
        now = datetime.now(UTC)
        assignment = self.state.assignment(iccid)
        assignment["startTime"] = now.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
        assignment["endTime"] = (now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
        self.state.use(iccid, used)
        return used

    async def orders_booked(self) -> int:
        return sum(1 for body in self.state.transactions() if not _is_topup(body))

    async def topups_booked(self) -> int:
        return sum(1 for body in self.state.transactions() if _is_topup(body))

    def webhook(self, purchase: Purchase) -> Webhook:
        body, headers = self.state.callback(purchase.esims[0].iccid)
        return Webhook({k.lower(): v for k, v in headers.items()}, body)


class Esimfly(_Fake):
    kind = "esimfly"
    prefix = esimfly.BASE
    asynchronous = True  # KDDI packages answer pending_details first

    def make(self) -> tuple[Any, Any]:
        return esimfly.make_app(pending_polls=1_000)

    def credentials(self) -> dict[str, str]:
        return {
            "access_code": esimfly.ACCESS_CODE,
            "secret_key": esimfly.SECRET_KEY,
            "webhook_secret": WEBHOOK_SECRET,
        }

    def sync_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        # The only package the fake sells top-ups for is its US one.
        return _first(packages, lambda p: "KDDI" not in p.provider_code.upper())

    def async_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        return _first(packages, lambda p: "KDDI" in p.provider_code.upper())

    def complete(self) -> None:
        for order in self.state.orders.values():
            order.polls_left = 0

    async def set_usage(self, iccid: str) -> int:
        self.state.set_usage(iccid, used_mb="250")
        return 250 * MIB

    async def orders_booked(self) -> int:
        return int(self.state.orders_placed)

    async def topups_booked(self) -> int:
        return int(self.state.topups_placed)

    def webhook(self, purchase: Purchase) -> Webhook:
        body = json.dumps(
            {
                "event": "esim.provisioned",
                "timestamp": datetime.now(UTC).isoformat(),
                "data": {
                    "order_reference": purchase.provider_order_id,
                    "iccid": purchase.esims[0].iccid,
                },
            },
            separators=(",", ":"),
        ).encode()
        digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "content-type": "application/json",
            "x-webhook-event": "esim.provisioned",
            "x-webhook-id": f"dlv_{uuid.uuid4().hex}",
            "x-webhook-signature": f"sha256={digest}",
        }
        return Webhook(headers, body)


class Simulator(Driver):
    kind = "simulator"
    asynchronous = True

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.sessions: async_sessionmaker[AsyncSession] | None = None

    @asynccontextmanager
    async def running(self, tmp_path: Path) -> AsyncIterator[None]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'contract-simulator.db'}")
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all, tables=list(SIMULATOR_TABLES))
        self.sessions = session_factory(engine)
        try:
            yield
        finally:
            await engine.dispose()

    def build(self) -> Provider:
        assert self.sessions is not None
        credentials = {"webhook_secret": WEBHOOK_SECRET, "async_delay_seconds": "30"}
        config = AdapterConfig("contract-simulator", None, credentials, self.clock, self.sessions)
        return FACTORIES[self.kind](config)

    def sync_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        return _first(packages, lambda p: _countries(p).isdisjoint(ASYNC_PROVISIONING_COUNTRIES))

    def async_package(self, packages: Sequence[ProviderPackage]) -> ProviderPackage:
        return _first(packages, lambda p: _countries(p) <= set(ASYNC_PROVISIONING_COUNTRIES))

    def complete(self) -> None:
        self.clock.advance(seconds=31)

    async def set_usage(self, iccid: str) -> int:
        sim = self._sim()
        await sim.install(iccid)
        await sim.attach(iccid)
        await sim.use(iccid, 42.5)
        return round(42.5 * MIB)

    async def orders_booked(self) -> int:
        assert self.sessions is not None
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(SimOrder)) or 0)

    async def topups_booked(self) -> int:
        assert self.sessions is not None
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(SimTopUp)) or 0)

    def webhook(self, purchase: Purchase) -> Webhook:
        headers, body = self._sim().notification("ORDER_READY", reference=purchase.reference)
        return Webhook(headers, body)

    def _sim(self) -> SimulatorProvider:
        assert isinstance(self.provider, SimulatorProvider)
        return self.provider


def _is_topup(transaction: dict[str, Any]) -> bool:
    """An eSIM Go transaction that applies a bundle to existing eSIMs (names their ICCIDs)."""
    return any(item.get("iccids") for item in transaction.get("order", []))


def _countries(package: ProviderPackage) -> set[str]:
    return {c.country_code for c in package.coverage}


DRIVERS: dict[str, type[Driver]] = {
    "simulator": Simulator,
    "esimaccess": EsimAccess,
    "airalo": Airalo,
    "airalo-async": AiraloAsync,
    "simplifytrip": SimplifyTrip,
    "esimgo": EsimGo,
    "esimfly": Esimfly,
}
