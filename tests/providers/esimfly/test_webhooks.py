"""Inbound esimfly webhooks: ``X-Webhook-Signature: sha256=<hex HMAC(whsec, raw body)>``."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from esimgate.providers.base import (
    Capability,
    LogicalError,
    LogicalReason,
    OrderRequest,
    ProviderNotice,
    PurchaseState,
    TechnicalError,
    WebhookReceiver,
)
from esimgate.providers.esimfly.adapter import EsimflyProvider
from esimgate.providers.esimfly.client import EsimflyClient
from tests.fakes.esimfly import ACCESS_CODE, SECRET_KEY, FakeState, make_app

BASE_URL = "http://esimfly.test/api/v1/business/"
SECRET = "whsec_example"
IP = "203.0.113.7"
# The doc's exact bytes and its computed vector (section 6).
DOC_BODY = (
    b'{"event":"esim.provisioned","timestamp":"2026-04-13T10:05:30.000Z","data":'
    b'{"order_reference":"order_1776079539762_hvkrk","iccid":"8981100000012345678"}}'
)
DOC_SIGNATURE = "sha256=2776c19bf81c4fe1e6c3324511423d7040195429e2629100c53fec6c9bdd50e5"


def _adapter(
    transport: httpx.AsyncBaseTransport | None = None, secret: str = SECRET
) -> EsimflyProvider:
    http = httpx.AsyncClient(
        transport=transport or httpx.MockTransport(lambda _: httpx.Response(500)),
        base_url=BASE_URL,
        follow_redirects=False,
    )
    return EsimflyProvider(EsimflyClient(http, ACCESS_CODE, SECRET_KEY), webhook_secret=secret)


def _signed(body: bytes, secret: str = SECRET, **extra: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "user-agent": "eSIMfly-Webhook/1.0",
        "x-webhook-event": "esim.provisioned",
        "x-webhook-timestamp": "2026-04-13T10:05:30.000Z",
        "x-webhook-signature": f"sha256={digest}",
    }
    headers.update(extra)
    return headers


@pytest.fixture
async def adapter() -> AsyncIterator[EsimflyProvider]:
    provider = _adapter()
    yield provider
    await provider.aclose()


def test_is_a_webhook_receiver(adapter: EsimflyProvider) -> None:
    assert isinstance(adapter, WebhookReceiver)
    assert Capability.WEBHOOKS in adapter.capabilities


async def test_without_secret_no_webhooks_capability_and_everything_refused() -> None:
    provider = _adapter(secret="")
    try:
        assert Capability.WEBHOOKS not in provider.capabilities
        headers = {"x-webhook-signature": DOC_SIGNATURE, "x-webhook-id": "d1"}
        with pytest.raises(LogicalError) as caught:
            provider.parse_webhook(headers, DOC_BODY, IP)
        assert caught.value.reason is LogicalReason.REJECTED
    finally:
        await provider.aclose()


def test_genuine_doc_vector_parses(adapter: EsimflyProvider) -> None:
    headers = {
        "x-webhook-event": "esim.provisioned",
        "x-webhook-id": "dlv_123",
        "x-webhook-signature": DOC_SIGNATURE,
    }
    notice = adapter.parse_webhook(headers, DOC_BODY, IP)
    # order_reference is esimfly's own id, not ours: esimgate maps it through the stored id.
    assert notice == ProviderNotice(
        event_id="dlv_123",
        kind="esim.provisioned",
        reference=None,
        iccid="8981100000012345678",
        provider_order_id="order_1776079539762_hvkrk",
    )


def test_signature_checked_independently_of_helper(adapter: EsimflyProvider) -> None:
    body = json.dumps(
        {
            "event": "esim.status.changed",
            "timestamp": "2026-04-13T11:00:00.000Z",
            "data": {"iccid": 8981100000012345678, "old_status": "NEW", "new_status": "ACTIVE"},
        }
    ).encode()
    notice = adapter.parse_webhook(_signed(body, **{"x-webhook-id": "w-9"}), body, IP)
    assert notice == ProviderNotice("w-9", "esim.status.changed", None, "8981100000012345678")


def test_without_delivery_id_the_body_hash_is_the_id(adapter: EsimflyProvider) -> None:
    headers = {"x-webhook-signature": DOC_SIGNATURE}
    notice = adapter.parse_webhook(headers, DOC_BODY, IP)
    assert notice.event_id == hashlib.sha256(DOC_BODY).hexdigest()


def test_duplicate_deliveries_share_the_event_id(adapter: EsimflyProvider) -> None:
    # esimfly retries with the same X-Webhook-Id (a new timestamp header each time).
    first = adapter.parse_webhook(
        _signed(DOC_BODY, **{"x-webhook-id": "dlv_7", "x-webhook-timestamp": "t1"}), DOC_BODY, IP
    )
    again = adapter.parse_webhook(
        _signed(DOC_BODY, **{"x-webhook-id": "dlv_7", "x-webhook-timestamp": "t2"}), DOC_BODY, IP
    )
    assert first == again
    # Without the id header, the same bytes give the same (hash) id too.
    one = adapter.parse_webhook(_signed(DOC_BODY), DOC_BODY, IP)
    two = adapter.parse_webhook(_signed(DOC_BODY), DOC_BODY, "198.51.100.1")
    assert one.event_id == two.event_id


def _refused(adapter: EsimflyProvider, headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(LogicalError) as caught:
        adapter.parse_webhook(headers, body, IP)
    assert caught.value.reason is LogicalReason.REJECTED


def test_tampered_body_refused(adapter: EsimflyProvider) -> None:
    headers = _signed(DOC_BODY)
    _refused(adapter, headers, DOC_BODY.replace(b"8981100000012345678", b"8981100000099999999"))
    _refused(adapter, headers, DOC_BODY + b" ")


def test_wrong_secret_refused(adapter: EsimflyProvider) -> None:
    _refused(adapter, _signed(DOC_BODY, secret="whsec_other"), DOC_BODY)


def test_missing_or_malformed_signature_refused(adapter: EsimflyProvider) -> None:
    headers = _signed(DOC_BODY)
    del headers["x-webhook-signature"]
    _refused(adapter, headers, DOC_BODY)
    bare = DOC_SIGNATURE.removeprefix("sha256=")
    _refused(adapter, {"x-webhook-signature": bare}, DOC_BODY)  # no scheme
    _refused(adapter, {"x-webhook-signature": "sha1=" + bare}, DOC_BODY)
    _refused(adapter, {"x-webhook-signature": "sha256="}, DOC_BODY)
    # The superseded header name is not accepted.
    _refused(adapter, {"x-esimfly-signature": DOC_SIGNATURE}, DOC_BODY)


def test_signed_but_unparseable_refused(adapter: EsimflyProvider) -> None:
    for body in (b"not json", b"[1, 2]", b'{"data": {"iccid": "8981100000012345678"}}', b""):
        headers = _signed(body)
        del headers["x-webhook-event"]
        _refused(adapter, headers, body)
    _refused(adapter, _signed(b'{"event":"x","data":[1]}'), b'{"event":"x","data":[1]}')


async def test_notice_names_the_upstream_order_whichever_process_created_it() -> None:
    """The webhook carries esimfly's order id only; the notice passes it on, and a process that
    did not place the order (a restart, another worker) finds the order by it."""
    app, state = make_app()
    provider = _adapter(httpx.ASGITransport(app=app))
    other = _adapter(httpx.ASGITransport(app=app))
    try:
        code = await _async_package(provider, state)
        purchase = await provider.create_order(OrderRequest("ord-ours-1", code, 1))
        assert purchase.state is PurchaseState.PENDING
        assert purchase.provider_order_id
        body = json.dumps(
            {
                "event": "esim.provisioned",
                "timestamp": "2026-04-13T10:05:30.000Z",
                "data": {
                    "order_reference": purchase.provider_order_id,
                    "iccid": "8981100000012345678",
                },
            },
            separators=(",", ":"),
        ).encode()
        notice = other.parse_webhook(_signed(body, **{"x-webhook-id": "a1"}), body, IP)
        assert notice.reference is None
        assert notice.provider_order_id == purchase.provider_order_id
        assert notice.iccid == "8981100000012345678"
        with pytest.raises(TechnicalError):  # by our reference alone it cannot be found
            await other.get_order("ord-ours-1")
        found = await other.get_order("ord-ours-1", notice.provider_order_id)
        assert found is not None
        assert found.provider_order_id == purchase.provider_order_id
    finally:
        await provider.aclose()
        await other.aclose()


def test_echoed_idempotency_key_is_our_reference(adapter: EsimflyProvider) -> None:
    body = b'{"event":"esim.provisioned","data":{"idempotency_key":"ord-42","iccid":"89811"}}'
    notice = adapter.parse_webhook(_signed(body), body, IP)
    assert notice.reference == "ord-42"
    assert notice.iccid is None  # not an ICCID


async def _async_package(provider: EsimflyProvider, state: FakeState) -> str:
    packages = await provider.list_packages()
    pending = [p for p in packages if "kddi" in (p.name + p.provider_code).lower()]
    assert pending, "the fake offers a KDDI-style (pending) package"
    return pending[0].provider_code
