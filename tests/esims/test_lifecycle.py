"""An eSIM's life through HTTP: order → install → attach → use → depleted, and expiry; with the
API's status, usage numbers, live status, refresh rules and events exact at each step."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from esimgate.providers.base import UsageReport
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.providers.simulator.adapter import SimulatorProvider
from esimgate.runtime import Runtime
from esimgate.webhooks.models import OutboxEvent
from tests.orders.test_place_order import ORDER, package
from tests.support import SignedClient

BUSINESS = "/api/v1/business"
MIB = 1024 * 1024


class CountingSimulator:
    """The simulator, counting query_usage calls (the upstream calls a refresh makes)."""

    def __init__(self, inner: SimulatorProvider) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.capabilities = inner.capabilities
        self.max_usage_batch = inner.max_usage_batch
        self.usage_calls = 0
        self.fail: Exception | None = None

    async def query_usage(self, esims: Any) -> Any:
        self.usage_calls += 1
        await asyncio.sleep(0.05)  # long enough for concurrent refreshes to overlap
        if self.fail is not None:
            raise self.fail
        return await self.inner.query_usage(esims)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def simulator(runtime: Runtime) -> tuple[SimulatorProvider, CountingSimulator]:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name("simulator")
    assert account is not None
    real = runtime.providers.adapter(account)
    assert isinstance(real, SimulatorProvider)
    counting = CountingSimulator(real)
    runtime.providers.override(account.id, counting)  # type: ignore[arg-type]
    return real, counting


async def events(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        rows = (await session.execute(select(OutboxEvent).order_by(OutboxEvent.id))).scalars()
        return [
            f"{r.event}:{r.payload['threshold']}" if r.event == "esim.usage_threshold" else r.event
            for r in rows
        ]


async def live(api: SignedClient, iccid: str) -> dict[str, Any]:
    response = await api.post(f"{BUSINESS}/esims/status", {"iccid": iccid})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def usage(api: SignedClient, iccid: str) -> dict[str, Any]:
    response = await api.get(f"{BUSINESS}/esims/usage/query?iccid={iccid}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_lifecycle_end_to_end(api: SignedClient, runtime: Runtime, clock: Any) -> None:
    real, _ = await simulator(runtime)
    pkg = await package(runtime, "Australia")
    order = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()
    iccid = order["esims"][0]["iccid"]
    total_mb = (await usage(api, iccid))["data"]["total_mb"]
    assert total_mb > 0

    state = await live(api, iccid)
    assert state["status"] == "NEW"
    assert state["profile"] == "Not Installed"
    assert state["last_network"]["operator"] is None and state["activation_date"] is None

    report: UsageReport = await real.install(iccid, "iPhone 16", "356938035643809")
    assert report.device_model == "iPhone 16"
    state = await live(api, iccid)
    assert state["status"] == "NEW" and state["profile"] == "Enabled"
    assert state["esim_status"] == "Installed"
    assert state["device"] == {"model": "iPhone 16", "imei": "356938035643809"}

    await real.attach(iccid, "AU")
    state = await live(api, iccid)
    assert state["status"] == "ACTIVE"
    assert state["last_network"]["country_iso2"] == "AU"
    assert state["last_network"]["mcc"] == "505"
    assert state["activation_date"] is not None and state["expiry_date"] is not None

    await real.use(iccid, total_mb * 0.5)
    await live(api, iccid)
    stored = await usage(api, iccid)
    assert stored["data"]["used_mb"] == total_mb * 0.5
    assert stored["data"]["remaining_mb"] == total_mb * 0.5
    assert stored["data"]["usage_percentage"] == 50
    assert stored["esim"]["status"] == "ACTIVE"

    await real.use(iccid, total_mb * 0.5)
    state = await live(api, iccid)
    assert state["status"] == "DEPLETED"
    stored = await usage(api, iccid)
    assert stored["data"]["remaining_mb"] == 0 and stored["data"]["usage_percentage"] == 100
    listed = (await api.get(f"{BUSINESS}/esims?status=DEPLETED")).json()["data"]["esims"]
    assert [e["iccid"] for e in listed] == [iccid]

    # Each event once, however often the state is read again.
    await live(api, iccid)
    assert [
        e for e in await events(runtime) if e.startswith("esim.") and e != "esim.provisioned"
    ] == [
        "esim.activated",
        "esim.usage_threshold:50",
        "esim.usage_threshold:80",
        "esim.usage_threshold:90",
        "esim.usage_threshold:100",
        "esim.depleted",
    ]


async def test_expiry_and_history(api: SignedClient, runtime: Runtime, clock: Any) -> None:
    real, _ = await simulator(runtime)
    pkg = await package(runtime, "Canada")
    order = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()
    iccid = order["esims"][0]["iccid"]
    await real.install(iccid)
    await real.attach(iccid)
    day_one = clock.now().date()
    await real.use(iccid, 100)
    await live(api, iccid)
    clock.advance(days=1)
    await real.use(iccid, 28)
    await live(api, iccid)
    response = await api.get(
        f"{BUSINESS}/esims/usage/query?iccid={iccid}&from_date={day_one.isoformat()}"
        f"&to_date={clock.now().date().isoformat()}"
    )
    history = response.json()["data"]["usage_history"]
    assert history == [
        {"date": day_one.isoformat(), "data_used_mb": 100, "cumulative_mb": 100},
        {"date": clock.now().date().isoformat(), "data_used_mb": 28, "cumulative_mb": 128},
    ]
    await real.expire(iccid)
    state = await live(api, iccid)
    assert state["status"] == "EXPIRED"
    assert "esim.expired" in await events(runtime)


async def test_refresh_throttle_coalescing_and_stale(
    api: SignedClient, runtime: Runtime, clock: Any
) -> None:
    _, counting = await simulator(runtime)
    pkg = await package(runtime, "Chile")
    iccid = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()["esims"][0]["iccid"]
    path = f"{BUSINESS}/esims/{iccid}/refresh"

    burst = await asyncio.gather(*(api.post(path) for _ in range(10)))
    assert [r.status_code for r in burst] == [200] * 10, [r.text for r in burst]
    assert counting.usage_calls == 1
    assert sum(not r.json()["meta"]["cached"] for r in burst) >= 1

    clock.advance(seconds=59.999)
    cached = await api.post(path)
    assert cached.json()["meta"]["cached"] is True and counting.usage_calls == 1
    clock.advance(seconds=0.001)
    fresh = await api.post(path)
    assert fresh.json()["meta"]["cached"] is False and counting.usage_calls == 2

    clock.advance(seconds=60)
    from esimgate.providers.base import TechnicalError

    counting.fail = TechnicalError("upstream down", committed=None)
    stale = await api.post(path)
    assert stale.status_code == 200, stale.text
    assert stale.json()["meta"] == {
        "cached": True,
        "stale": True,
        "refreshedAt": fresh.json()["meta"]["refreshedAt"],
    }


async def test_refresh_without_stored_data_fails_cleanly(
    api: SignedClient, runtime: Runtime
) -> None:
    _, counting = await simulator(runtime)
    pkg = await package(runtime, "Chile")
    iccid = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()["esims"][0]["iccid"]
    from esimgate.providers.base import TechnicalError

    counting.fail = TechnicalError("down", committed=None, retry_after=7)
    down = await api.post(f"{BUSINESS}/esims/{iccid}/refresh")
    assert down.status_code == 503 and down.json()["code"] == "SERVICE_UNAVAILABLE"
    assert down.headers["Retry-After"] == "7"


async def test_usage_and_status_isolation(
    api: SignedClient, runtime: Runtime, make_account: Any
) -> None:
    _, counting = await simulator(runtime)
    pkg = await package(runtime, "Chile")
    order = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()
    iccid = order["esims"][0]["iccid"]
    stranger = SignedClient(api.client, await make_account("stranger"), api.clock_ms)
    assert (await stranger.get(f"{BUSINESS}/esims/usage/query?iccid={iccid}")).status_code == 404
    by_order = await stranger.get(
        f"{BUSINESS}/esims/usage/query?order_id={order['orderReference']}"
    )
    assert by_order.status_code == 404
    assert (await stranger.post(f"{BUSINESS}/esims/{iccid}/refresh")).status_code == 404
    forbidden = await stranger.post(f"{BUSINESS}/esims/status", {"iccid": iccid})
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "FORBIDDEN"
    assert counting.usage_calls == 0
    both = await api.get(
        f"{BUSINESS}/esims/usage/query?iccid={iccid}&order_id={order['orderReference']}"
    )
    assert both.json()["code"] == "INVALID_PARAMETER"
    neither = await api.get(f"{BUSINESS}/esims/usage/query")
    assert neither.json()["code"] == "MISSING_IDENTIFIER"


async def test_refresh_throttle_holds_across_two_server_processes(
    api: SignedClient, runtime: Runtime, settings: Any, clock: Any, creds: Any
) -> None:
    """Two app instances with separate runtimes (as two processes) share one window."""
    import httpx

    from esimgate.app import create_app
    from esimgate.runtime import build_runtime

    _, counting = await simulator(runtime)
    pkg = await package(runtime, "Chile")
    iccid = (await api.post(ORDER, {"packageCode": pkg["code"]})).json()["esims"][0]["iccid"]
    second = build_runtime(settings, clock)
    _, counting_two = await simulator(second)
    try:
        app = create_app(runtime=second, migrate=False, embedded_worker=False)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://two.test") as other:
            two = SignedClient(other, creds, api.clock_ms)
            path = f"{BUSINESS}/esims/{iccid}/refresh"
            answers = await asyncio.gather(*(client.post(path) for client in [api, two] * 5))
            assert [a.status_code for a in answers] == [200] * 10
            assert counting.usage_calls + counting_two.usage_calls == 1
            clock.advance(seconds=60)
            assert (await two.post(path)).json()["meta"]["cached"] is False
            assert counting.usage_calls + counting_two.usage_calls == 2
    finally:
        await second.aclose()
