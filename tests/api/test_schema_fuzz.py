"""The OpenAPI schema, fuzzed with schemathesis (reliability.md, "Signing and authentication").

Every operation of the served schema — the Business API, the v3 dialect, provider webhooks, QR
images, probes — gets generated requests, schema-valid (positive) and schema-violating
(negative), and every response must pass schemathesis's checks: no 5xx, a documented status
code, a documented content type, a body and headers matching the documented schema, and a 4xx
for negative data.

How it runs: the schema is the app's own ``/openapi.json``, fetched in-process over ASGI.
schemathesis and Hypothesis generate cases in a worker thread; each case is serialized as
schemathesis would send it, signed over its exact body bytes like ``SignedClient`` does (a fresh
RT-RequestID, the test clock's timestamp) and sent through an httpx ASGI client on the test's
event loop, where the runtime's database and Redis connections live. The ``runtime`` fixture
checks the ledger invariants afterwards, so the money moved by fuzzed orders, top-ups and
cancels must add up as well.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation import hypothesis as schemathesis_hypothesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import update

from esimgate.app import create_app
from esimgate.auth.models import ApiKey
from esimgate.config import Settings
from esimgate.runtime import Runtime
from esimgate.webhooks import ssrf
from tests.support import SignedClient

BASE_URL = "http://esimgate.test"
BUSINESS = "/api/v1/business"
SIGNED_EXAMPLES = 20  # per operation and generation mode
UNSIGNED_EXAMPLES = 10  # every authenticated operation answers 401 before reading anything
MIN_OPERATIONS = 26  # in the schema today: fewer means operations went missing
MIN_SIGNED_OPERATIONS = 18  # of them authenticated: 16 Business API, 2 v3 dialect

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]

FUZZ_SETTINGS = hypothesis_settings(
    max_examples=SIGNED_EXAMPLES,
    # The same cases on every run and machine. (Hypothesis also mixes in literals from the
    # modules loaded, so running this file alone and within the whole suite differ a little.)
    derandomize=True,
    database=None,  # no example database: a failure is reproduced from the fixed seed
    deadline=None,  # a request's duration depends on the machine and database, not the data
    # No shrinking: requests change the database, so replaying a shrunk case is not the same
    # experiment; schemathesis's report already names the failing request as a curl command.
    phases=(Phase.explicit, Phase.generate),
    # Negative path parameters must still be URL path segments: schemathesis rejects many of its
    # own drafts (e.g. for the 64-character provider name), deterministically, not flakily.
    # Generating schemathesis's cases takes as long as the machine makes it: not a finding.
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


# --- what was sent ------------------------------------------------------------------------------


@dataclass
class Tally:
    """The status codes each operation answered, so that a run that tested nothing fails."""

    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    def record(self, label: str, status: int) -> None:
        self.statuses[label][status] += 1

    def requests(self) -> int:
        return sum(sum(counts.values()) for counts in self.statuses.values())

    def answered(self, label: str, predicate: Callable[[int], bool]) -> bool:
        return any(predicate(status) for status in self.statuses[label])

    def summary(self) -> str:
        return "\n".join(f"{label}: {dict(c)}" for label, c in sorted(self.statuses.items()))


@dataclass(frozen=True)
class KnownEsim:
    iccid: str
    esim_id: int
    order_reference: str


@dataclass(frozen=True)
class Known:
    """Real identifiers of the fuzzing account, swapped into some schema-valid cases so that
    the success paths are fuzzed too, not only "not found"."""

    esim: KnownEsim
    cancellable: KnownEsim  # its own order: a cancel ends the eSIM and every eSIM of its order
    qr_token: str
    package_codes: tuple[str, ...]
    topup_codes: tuple[str, ...]
    access_code: str
    secret_key: str
    webhook_url: str

    def values(self, path: str, name: str) -> list[Any]:
        esim = self.cancellable if path == f"{BUSINESS}/esims/cancel" else self.esim
        iccids = [esim.iccid]
        if path.startswith("/api/v3/"):
            iccids.append(f"ESIM-{esim.esim_id:08d}")  # the v3 dialect also takes the eSIM id
        codes = self.topup_codes if path.startswith(f"{BUSINESS}/topup/") else self.package_codes
        return {
            "iccid": iccids,
            "esimId": [esim.esim_id],
            "orderReference": [esim.order_reference],
            "order_id": [esim.order_reference],
            "token": [self.qr_token],
            "packageCode": list(codes),
            "provider_account": ["simulator"],
            "accessCode": [self.access_code],
            "appId": [self.access_code],
            "secretKey": [self.secret_key],
            "webhook_url": [self.webhook_url],
        }.get(name, [])


def swap_known(case: schemathesis.Case, known: Known, draw: Callable[..., Any]) -> None:
    """Replace some generated identifiers of a schema-valid case with real ones, in place."""
    containers: list[dict[str, Any]] = [case.path_parameters, case.query]
    if isinstance(case.body, dict):
        containers.append(case.body)
    for container in containers:
        for name in list(container):
            choices = known.values(case.path, name)
            if choices and draw(st.booleans(), label=f"real {name}"):
                container[name] = draw(st.sampled_from(choices), label=name)


# --- sending ------------------------------------------------------------------------------------

Sender = Callable[[schemathesis.Case], httpx.Response]
Signer = Callable[[bytes], dict[str, str]]


def make_sender(
    loop: asyncio.AbstractEventLoop,
    route: Callable[[schemathesis.Case], httpx.AsyncClient],
    sign: Signer | None,
) -> Sender:
    """Serialize a case as schemathesis's own transport would, sign the exact body bytes, and
    send it through the app on the test's event loop (called from the fuzzing thread)."""

    def send(case: schemathesis.Case) -> httpx.Response:
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        prepared = requests.Request(
            method=kwargs["method"],
            url=kwargs["url"],
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            data=kwargs.get("data"),
            json=kwargs.get("json"),
            cookies=kwargs.get("cookies"),
        ).prepare()
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
        if sign is not None:
            headers.update(sign(body))
        request = route(case).request(
            str(prepared.method),
            str(prepared.url),
            content=body,
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        )
        return asyncio.run_coroutine_threadsafe(request, loop).result(timeout=60)

    return send


# --- fuzzing ------------------------------------------------------------------------------------


def modes(operation: schemathesis.APIOperation) -> list[GenerationMode]:
    """Negative data needs something to break: an operation without parameters or a body
    (``GET /balance``) has none, and Hypothesis would rightly call it unsatisfiable."""
    inputs = len(operation.path_parameters) + len(operation.query) + len(operation.headers)
    if not inputs and not len(operation.body):
        return [GenerationMode.POSITIVE]
    return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def fuzz_operation(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    send: Sender,
    known: Known,
    tally: Tally,
    examples: int,
) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @hypothesis_settings(FUZZ_SETTINGS, max_examples=examples)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(strategy, label="case")
        if mode.is_positive:  # negative cases stay as generated: their point is the bad value
            swap_known(case, known, data.draw)
        response = send(case)
        tally.record(operation.label, response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()


def fuzz(schema: schemathesis.BaseSchema, send: Sender, known: Known, examples: int) -> Tally:
    """Every operation of the schema in both generation modes (runs in a worker thread)."""
    tally = Tally()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes(operation):
            fuzz_operation(operation, mode, send, known, tally, examples)
    return tally


def signed_operations(schema: schemathesis.BaseSchema) -> set[str]:
    """Operations that authenticate the caller: they document ``HMAC_REQUIRED``."""
    labels = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        unauthorized = operation.definition.raw.get("responses", {}).get("401", {})
        if "`HMAC_REQUIRED`" in unauthorized.get("description", ""):
            labels.add(operation.label)
    return labels


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Loopback webhook receivers, as the SSRF rules allow only through this explicit test
    setting, so that ``PUT /webhooks`` and ``POST /webhooks/test`` have a success path."""
    return settings.model_copy(update={"webhook_allow_loopback": True})


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated webhook URLs name random hosts: none is looked up in real DNS."""

    async def unresolvable(host: str, port: int, url: str) -> tuple[Any, ...]:
        raise ssrf.UnsafeWebhookUrl(url, f"cannot resolve {host!r} (no DNS in this test)")

    monkeypatch.setattr(ssrf, "_resolve", unresolvable)


@pytest.fixture(autouse=True)
def _isolated_hypothesis() -> Iterator[None]:
    """schemathesis patches Hypothesis globally (buffer size, a no-op pretty printer) the first
    time it builds a strategy; undo that after each test so that other Hypothesis tests in the
    session generate and report exactly as they would without this module."""
    from hypothesis import core as root_core
    from hypothesis.internal import entropy
    from hypothesis.internal.conjecture import engine
    from hypothesis.strategies._internal import collections, core

    patched = [
        (root_core, "RepresentationPrinter"),
        (root_core, "BUFFER_SIZE"),
        (engine, "BUFFER_SIZE"),
        (collections, "BUFFER_SIZE"),
        (entropy, "register_random"),
        (core, "is_first_param_referenced_in_function"),
    ]
    originals = [getattr(module, name) for module, name in patched]
    yield
    for (module, name), value in zip(patched, originals, strict=True):
        setattr(module, name, value)
    schemathesis_hypothesis.setup._is_patched = False  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Clients:
    main: httpx.AsyncClient
    # Wrong credentials at /auth/token count against the caller's IP (100 an hour, then 429 for
    # everything from it): the token endpoints are fuzzed from their own address so that their
    # failures cannot throttle the signed operations fuzzed after them.
    credentials: httpx.AsyncClient

    def route(self, case: schemathesis.Case) -> httpx.AsyncClient:
        return self.credentials if case.path.endswith("/auth/token") else self.main


@pytest.fixture
async def clients(runtime: Runtime) -> AsyncIterator[Clients]:
    app = create_app(runtime=runtime, migrate=False, embedded_worker=False)
    # A crash is answered 500 (and reported by not_a_server_error), not raised into the test.
    main = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("203.0.113.20", 50000))
    credentials = httpx.ASGITransport(
        app=app, raise_app_exceptions=False, client=("203.0.113.21", 50000)
    )
    async with (
        httpx.AsyncClient(transport=main, base_url=BASE_URL) as a,
        httpx.AsyncClient(transport=credentials, base_url=BASE_URL) as b,
    ):
        yield Clients(a, b)


def closed_port() -> int:
    """A loopback port nothing listens on: webhook test deliveries are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def buy(api: SignedClient, package_code: str) -> tuple[KnownEsim, dict[str, Any]]:
    order = await api.post(f"{BUSINESS}/esims/order", {"packageCode": package_code})
    assert order.status_code == 200, order.text
    iccid = order.json()["esims"][0]["iccid"]
    listed = await api.get(f"{BUSINESS}/esims?search={iccid}")
    assert listed.status_code == 200, listed.text
    row: dict[str, Any] = listed.json()["data"]["esims"][0]
    return KnownEsim(iccid, row["id"], order.json()["orderReference"]), row


async def seed_account(api: SignedClient, runtime: Runtime) -> Known:
    """The fuzzing account: two completed orders (eSIMs with ICCIDs, QR tokens, top-ups on
    offer) and a rate limit its ~1000 requests cannot exhaust (429 is documented, but a run
    throttled halfway would test nothing after that)."""
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(ApiKey)
            .where(ApiKey.access_code == api.creds.access_code)
            .values(rate_limit_per_hour=1_000_000)
        )
    packages = await api.get(f"{BUSINESS}/esims/packages?search=Turkey&type=local&limit=100")
    assert packages.status_code == 200, packages.text
    codes = [p["package_code"] for p in packages.json()["data"]["packages"]]
    # The eSIM to cancel first: generated ids start small, so a stray generated esimId (1, 2, ...)
    # most likely ends this one rather than the eSIM the top-ups and refreshes need.
    cancellable, _ = await buy(api, codes[0])
    esim, row = await buy(api, codes[0])
    topups = await api.get(f"{BUSINESS}/topup/packages?iccid={esim.iccid}")
    assert topups.status_code == 200, topups.text
    topup_codes = [p["package_code"] for p in topups.json()["data"]["packages"]]
    return Known(
        esim=esim,
        cancellable=cancellable,
        qr_token=row["qr_code"].rsplit("/", 1)[1].split(".")[0],
        package_codes=tuple(codes[:3]),
        topup_codes=tuple(topup_codes[:3]),
        access_code=api.creds.access_code,
        secret_key=api.creds.secret_key,
        webhook_url=f"http://127.0.0.1:{closed_port()}/esimgate-hook",
    )


async def load_schema(client: httpx.AsyncClient) -> schemathesis.BaseSchema:
    response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    # An explicit default configuration: no schemathesis.toml found on the way up applies.
    return schemathesis.openapi.from_dict(response.json(), config=schemathesis.Config())


# --- tests --------------------------------------------------------------------------------------


async def test_signed_requests_conform_to_the_schema(
    clients: Clients, api: SignedClient, runtime: Runtime
) -> None:
    known = await seed_account(api, runtime)
    schema = await load_schema(clients.main)
    send = make_sender(asyncio.get_running_loop(), clients.route, api.headers)
    tally = await asyncio.to_thread(fuzz, schema, send, known, SIGNED_EXAMPLES)

    report = tally.summary()
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert set(tally.statuses) == operations, report
    assert len(operations) >= MIN_OPERATIONS, report
    assert tally.requests() >= 20 * len(operations), report
    signed = signed_operations(schema)
    assert len(signed) >= MIN_SIGNED_OPERATIONS, sorted(signed)
    for label in signed:
        # Every generated request was signed exactly: the authenticator accepted them all.
        assert not tally.answered(label, lambda s: s in (401, 409, 429)), report
    # Real work, not only refusals. Success may need a lucky combination in one case (a live
    # eSIM, a compatible top-up code, no price guard), so one or two operations may miss out.
    succeeded = {label for label in signed if tally.answered(label, lambda s: 200 <= s < 300)}
    assert len(succeeded) >= len(signed) - 2, report


async def test_unsigned_requests_get_documented_4xx(
    clients: Clients, api: SignedClient, runtime: Runtime
) -> None:
    known = await seed_account(api, runtime)
    schema = await load_schema(clients.main)
    send = make_sender(asyncio.get_running_loop(), clients.route, None)
    tally = await asyncio.to_thread(fuzz, schema, send, known, UNSIGNED_EXAMPLES)

    report = tally.summary()
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert set(tally.statuses) == operations, report
    signed = signed_operations(schema)
    assert len(signed) >= MIN_SIGNED_OPERATIONS, sorted(signed)
    for label in signed:
        # Nothing is read, written or validated for a caller who is not authenticated.
        assert set(tally.statuses[label]) == {401}, report
