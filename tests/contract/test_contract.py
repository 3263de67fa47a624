"""One contract, six upstreams: the five adapters against their fakes over loopback HTTP, and the
built-in simulator. Every scenario runs unchanged against each; a scenario an upstream cannot
offer (say, asynchronous provisioning where every order completes at once) is not generated for
it, rather than skipped, and the capability it declares is checked to agree.

What the port promises (esimgate/providers/base.py) is what is asserted: units (bytes, 1/10000
money), our reference as the upstream's idempotency key, no second purchase for one reference,
``get_order`` answering ``None`` only when nothing was bought, webhooks verified the upstream's own
way and reduced to a notice that names our order.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from esimgate.clock import FrozenClock
from esimgate.providers.base import (
    Capability,
    EsimRef,
    LogicalError,
    LogicalReason,
    OrderRequest,
    Provider,
    ProviderPackage,
    Purchase,
    PurchaseState,
    TechnicalError,
    TopUpRequest,
    WebhookReceiver,
)
from tests.contract.upstreams import DRIVERS, Driver, Webhook

ICCID = re.compile(r"^89\d{16,20}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")


def kinds(**wanted: bool) -> list[str]:
    """The upstreams whose drivers have every attribute given (e.g. asynchronous=True)."""
    return [k for k, d in DRIVERS.items() if all(getattr(d, a) == v for a, v in wanted.items())]


@pytest.fixture
async def upstream(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Driver]:
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    driver = DRIVERS[request.param](clock)
    async with driver.running(tmp_path):
        driver.provider = driver.build()
        try:
            yield driver
        finally:
            await _close(driver.provider)


async def _close(provider: Provider) -> None:
    close = getattr(provider, "aclose", None)
    if close is not None:
        await close()


def adapter(driver: Driver) -> Provider:
    assert driver.provider is not None
    return driver.provider


def by_kind(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("upstream", names, indirect=True)


ALL = list(DRIVERS)


async def completed_order(
    driver: Driver, reference: str, package: ProviderPackage | None = None
) -> tuple[Purchase, ProviderPackage]:
    """One eSIM bought and ready, whichever way the upstream provisions."""
    provider = adapter(driver)
    if package is None:
        packages = await provider.list_packages()
        package = (
            driver.sync_package(packages) if driver.synchronous else driver.async_package(packages)
        )
    purchase = await provider.create_order(OrderRequest(reference, package.provider_code, 1))
    if purchase.state is PurchaseState.PENDING:
        driver.complete()
        found = await provider.get_order(reference, purchase.provider_order_id)
        assert found is not None
        purchase = found
    assert purchase.state is PurchaseState.COMPLETED, purchase
    return purchase, package


def assert_installable(purchase: Purchase, quantity: int) -> None:
    assert len(purchase.esims) == quantity, purchase
    assert len({e.iccid for e in purchase.esims}) == quantity
    for esim in purchase.esims:
        assert ICCID.match(esim.iccid), esim.iccid
        assert esim.provider_esim_id
        assert esim.smdp_address and esim.matching_id, esim
        assert esim.lpa.startswith("LPA:1$"), esim.lpa
        assert esim.smdp_address in esim.lpa and esim.matching_id in esim.lpa, esim


# --- catalogue ----------------------------------------------------------------------------------


@by_kind(*ALL)
async def test_catalogue_is_normalised(upstream: Driver) -> None:
    provider = adapter(upstream)
    assert isinstance(provider, Provider)
    assert Capability.CATALOGUE in provider.capabilities
    packages = await provider.list_packages()
    base = [p for p in packages if not p.is_topup]
    assert base, "no base packages"
    codes = [p.provider_code for p in packages]
    assert len(codes) == len(set(codes)), "package codes are the upstream's unique ids"
    for p in packages:
        assert p.provider_code and p.name, p
        assert isinstance(p.cost.amount_e4, int) and p.cost.amount_e4 > 0, p
        assert CURRENCY.match(p.cost.currency), p
        assert p.validity_days > 0, p
        assert p.data_bytes is None or (isinstance(p.data_bytes, int) and p.data_bytes > 0), p
        assert p.coverage, p
        for country in p.coverage:
            assert COUNTRY.match(country.country_code), (p.provider_code, country)
    assert (await provider.list_packages()) == packages  # stable between calls


# --- orders -------------------------------------------------------------------------------------


@by_kind(*kinds(synchronous=True))
async def test_order_completes_at_once_and_is_never_bought_twice(upstream: Driver) -> None:
    provider = adapter(upstream)
    package = upstream.sync_package(await provider.list_packages())
    request = OrderRequest("ct-sync-1", package.provider_code, 1, package.cost)
    purchase = await provider.create_order(request)
    assert purchase.state is PurchaseState.COMPLETED, purchase
    assert purchase.reference == "ct-sync-1"
    assert purchase.provider_order_id
    assert_installable(purchase, 1)
    if purchase.unit_cost is not None:
        assert purchase.unit_cost == package.cost
    again = await provider.create_order(request)  # a retry with the same reference
    assert again.provider_order_id == purchase.provider_order_id
    assert {e.iccid for e in again.esims} == {e.iccid for e in purchase.esims}
    assert await upstream.orders_booked() == 1


@by_kind(*kinds(asynchronous=True))
async def test_order_pending_then_completed(upstream: Driver) -> None:
    provider = adapter(upstream)
    assert Capability.ASYNC_PROVISIONING in provider.capabilities
    package = upstream.async_package(await provider.list_packages())
    request = OrderRequest("ct-async-1", package.provider_code, 1)
    purchase = await provider.create_order(request)
    assert purchase.state is PurchaseState.PENDING, purchase
    assert purchase.esims == ()
    assert purchase.provider_order_id
    still = await provider.get_order("ct-async-1", purchase.provider_order_id)
    assert still is not None and still.state is PurchaseState.PENDING
    retried = await provider.create_order(request)  # still pending: not a second purchase
    assert retried.provider_order_id == purchase.provider_order_id
    upstream.complete()
    done = await provider.get_order("ct-async-1", purchase.provider_order_id)
    assert done is not None and done.state is PurchaseState.COMPLETED, done
    # The upstream's id may change on completion (Airalo: the async request_id becomes the
    # order id); esimgate stores the newest, and the restart scenario looks orders up by it.
    assert done.provider_order_id
    assert_installable(done, 1)
    assert await upstream.orders_booked() == 1


@by_kind(*ALL)
async def test_several_esims_in_one_order(upstream: Driver) -> None:
    provider = adapter(upstream)
    packages = await provider.list_packages()
    package = (
        upstream.sync_package(packages)
        if upstream.synchronous
        else upstream.async_package(packages)
    )
    purchase = await provider.create_order(OrderRequest("ct-many", package.provider_code, 2))
    if purchase.state is PurchaseState.PENDING:
        upstream.complete()
        found = await provider.get_order("ct-many", purchase.provider_order_id)
        assert found is not None
        purchase = found
    assert purchase.state is PurchaseState.COMPLETED
    assert_installable(purchase, 2)


# --- query --------------------------------------------------------------------------------------


@by_kind(*ALL)
async def test_order_found_by_reference_and_after_a_restart(upstream: Driver) -> None:
    purchase, _ = await completed_order(upstream, "ct-find-1")
    provider = adapter(upstream)
    found = await provider.get_order("ct-find-1", purchase.provider_order_id)
    assert found is not None and found.state is PurchaseState.COMPLETED
    assert {e.iccid for e in found.esims} == {e.iccid for e in purchase.esims}
    # Another process (or this one after a restart) with only what esimgate stored.
    fresh = upstream.build()
    try:
        again = await fresh.get_order("ct-find-1", purchase.provider_order_id)
        assert again is not None and again.state is PurchaseState.COMPLETED, again
        assert {e.iccid for e in again.esims} == {e.iccid for e in purchase.esims}
    finally:
        close = getattr(fresh, "aclose", None)
        if close is not None:
            await close()


@by_kind(*ALL)
async def test_unknown_reference_is_none_only_when_the_upstream_can_know(upstream: Driver) -> None:
    """``None`` makes esimgate refund, so an upstream that cannot be searched by our reference
    must not claim there is no order: it says it cannot know (TechnicalError: left for an
    operator) or that the order may still come (PENDING: refunded at the pending deadline)."""
    provider = adapter(upstream)
    if Capability.ORDER_LOOKUP in provider.capabilities:
        assert await provider.get_order("ct-never-sent") is None
        return
    try:
        answer = await provider.get_order("ct-never-sent")
    except TechnicalError:
        return
    assert answer is not None and answer.state is PurchaseState.PENDING, answer
    assert answer.esims == ()


# --- usage --------------------------------------------------------------------------------------


@by_kind(*ALL)
async def test_usage_in_exact_bytes(upstream: Driver) -> None:
    provider = adapter(upstream)
    assert Capability.USAGE in provider.capabilities
    purchase, _ = await completed_order(upstream, "ct-usage-1")
    esim = purchase.esims[0]
    used = await upstream.set_usage(esim.iccid)
    ref = EsimRef(esim.iccid, esim.provider_esim_id, purchase.provider_order_id)
    reports = await provider.query_usage([ref])
    assert len(reports) == 1, reports
    report = reports[0]
    assert report.esim.iccid == esim.iccid
    assert report.used_bytes == used, (report.used_bytes, used)
    assert report.total_bytes is None or report.total_bytes >= report.used_bytes
    assert report.observed_at.tzinfo is not None
    assert report.raw_status, "the upstream's own status words are kept"


@by_kind(*ALL)
async def test_unknown_esim_is_absent_from_usage(upstream: Driver) -> None:
    provider = adapter(upstream)
    await completed_order(upstream, "ct-usage-2")  # the account is not empty
    ghost = "8900000000000000009"
    assert list(await provider.query_usage([EsimRef(ghost, ghost)])) == []


# --- top-up -------------------------------------------------------------------------------------


def _fitting(packages: list[ProviderPackage], base: ProviderPackage) -> list[ProviderPackage]:
    countries = {c.country_code for c in base.coverage}
    return [
        p
        for p in packages
        if p.is_topup
        and (
            base.provider_code in p.topup_for
            or (not p.topup_for and {c.country_code for c in p.coverage} <= countries)
        )
    ]


def _topup_for(packages: list[ProviderPackage], base: ProviderPackage) -> ProviderPackage:
    fitting = _fitting(packages, base)
    assert fitting, f"no top-up listed for {base.provider_code}"
    return min(fitting, key=lambda p: (p.cost.amount_e4, p.provider_code))


async def _rechargeable(driver: Driver) -> ProviderPackage:
    """A package with a top-up listed for it; upstreams that list top-ups per eSIM (esimfly)
    list none before the eSIM exists, and then the driver's usual package is the one."""
    packages = list(await adapter(driver).list_packages())
    usual = driver.sync_package(packages) if driver.synchronous else driver.async_package(packages)
    if _fitting(packages, usual):
        return usual
    listed = [
        p
        for p in packages
        if not p.is_topup
        and p.rechargeable
        and _fitting(packages, p)
        and {c.country_code for c in p.coverage} == {c.country_code for c in usual.coverage}
    ]
    candidates = listed or [p for p in packages if not p.is_topup and _fitting(packages, p)]
    candidates = [p for p in candidates if p.data_bytes is not None] or candidates
    return (
        min(candidates, key=lambda p: (p.cost.amount_e4, p.provider_code)) if candidates else usual
    )


@by_kind(*kinds(topups=True))
async def test_topup_once_per_reference(upstream: Driver) -> None:
    provider = adapter(upstream)
    assert Capability.TOPUP in provider.capabilities
    purchase, base = await completed_order(upstream, "ct-topup-base", await _rechargeable(upstream))
    esim = purchase.esims[0]
    ref = EsimRef(esim.iccid, esim.provider_esim_id, purchase.provider_order_id)
    # Listed after the eSIM exists: some upstreams list top-ups per eSIM.
    topup = _topup_for(list(await provider.list_packages()), base)
    request = TopUpRequest("ct-topup-1", ref, topup.provider_code)
    result = await provider.top_up(request)
    assert result.state is PurchaseState.COMPLETED, result
    assert result.reference == "ct-topup-1"
    if result.unit_cost is not None:
        assert result.unit_cost == topup.cost
    again = await provider.top_up(request)  # a retry after a lost answer
    assert again.state is PurchaseState.COMPLETED
    assert await upstream.topups_booked() == 1


@by_kind(*kinds(topups=False))
async def test_an_upstream_without_topups_says_so(upstream: Driver) -> None:
    provider = adapter(upstream)
    assert Capability.TOPUP not in provider.capabilities
    assert not [p for p in await provider.list_packages() if p.is_topup]
    purchase, _ = await completed_order(upstream, "ct-no-topup")
    esim = purchase.esims[0]
    with pytest.raises(LogicalError):
        await provider.top_up(
            TopUpRequest("ct-no-topup-1", EsimRef(esim.iccid, esim.provider_esim_id), "X")
        )


# --- cancel -------------------------------------------------------------------------------------


@by_kind(*kinds(cancels=False))
async def test_an_upstream_without_cancel_refuses_it(upstream: Driver) -> None:
    provider = adapter(upstream)
    assert Capability.CANCEL not in provider.capabilities
    purchase, _ = await completed_order(upstream, "ct-no-cancel")
    esim = purchase.esims[0]
    with pytest.raises(LogicalError) as refused:
        await provider.cancel(EsimRef(esim.iccid, esim.provider_esim_id))
    assert refused.value.reason is LogicalReason.NOT_ALLOWED


@by_kind(*kinds(cancels=True))
async def test_cancel_unused_refunds_once(upstream: Driver) -> None:
    provider = adapter(upstream)
    assert Capability.CANCEL in provider.capabilities
    purchase, package = await completed_order(upstream, "ct-cancel-1")
    esim = purchase.esims[0]
    ref = EsimRef(esim.iccid, esim.provider_esim_id, purchase.provider_order_id)
    result = await provider.cancel(ref)
    assert result.cancelled, result
    assert result.esim.iccid == esim.iccid
    if result.refund is not None:
        assert result.refund.currency == package.cost.currency
        assert 0 < result.refund.amount_e4 <= package.cost.amount_e4
    try:
        second = await provider.cancel(ref)
    except LogicalError as exc:  # refused as not allowed any more: also no second refund
        assert exc.reason in (LogicalReason.NOT_ALLOWED, LogicalReason.NOT_FOUND), exc
    else:
        assert not second.cancelled or second.refund is None, second


# --- webhooks -----------------------------------------------------------------------------------


def tampered(hook: Webhook) -> Webhook:
    body = hook.body.replace(b"}", b' ,"x":1}', 1) if hook.body.endswith(b"}") else hook.body + b" "
    return replace(hook, body=body)


@by_kind(*ALL)
async def test_webhook_verified_and_names_our_order(upstream: Driver) -> None:
    provider = adapter(upstream)
    assert isinstance(provider, WebhookReceiver)
    assert Capability.WEBHOOKS in provider.capabilities
    purchase, _ = await completed_order(upstream, "ct-hook-1")
    hook = upstream.webhook(purchase)
    notice = provider.parse_webhook(hook.headers, hook.body, hook.client_ip)
    assert notice.event_id and notice.kind
    iccids = {e.iccid for e in purchase.esims}
    names_it = (
        notice.reference == purchase.reference
        or (
            (notice.provider_order_id is not None)
            and notice.provider_order_id == purchase.provider_order_id
        )
        or notice.iccid in iccids
    )
    assert names_it, (notice, purchase)
    replay = provider.parse_webhook(hook.headers, hook.body, hook.client_ip)
    assert replay.event_id == notice.event_id, "a redelivery is recognisable as a duplicate"
    forged = tampered(hook)
    with pytest.raises(LogicalError) as refused:
        if forged.body == hook.body:
            raise AssertionError("tampering changed nothing")
        # An upstream that does not sign is recognised by its sender's address.
        ip = "198.51.100.9" if upstream.kind == "esimaccess" else forged.client_ip
        provider.parse_webhook(forged.headers, forged.body, ip)
    assert refused.value.reason is LogicalReason.REJECTED
