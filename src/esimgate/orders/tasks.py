"""Order jobs: finishing asynchronous provisioning, and reconciling ambiguous outcomes."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from esimgate.esims.models import Esim
from esimgate.orders.models import Order, OrderKind, OrderStatus
from esimgate.orders.repository import OrderRepository
from esimgate.orders.service import Outcome, call_provider, fail_order, settle
from esimgate.providers.base import EsimRef, Provider, ProviderError, TopUpRequest
from esimgate.providers.models import ProviderAccount
from esimgate.providers.resilience import retry_read
from esimgate.worker.jobs import job

if TYPE_CHECKING:
    from esimgate.runtime import Runtime

log = logging.getLogger(__name__)


class StillPending(RuntimeError):
    """The provider has not finished; the job runs again later (with backoff)."""


async def resolve(runtime: Runtime, order_id: int) -> str:
    """Ask the provider about one pending order by our reference and settle it if it can be.
    Returns the order's status afterwards."""
    async with runtime.sessions() as session:
        order = await session.get(Order, order_id)
        if order is None or order.status != OrderStatus.PENDING:
            return order.status if order else "missing"
        account = await session.get(ProviderAccount, order.provider_account_id)
        assert account is not None
    adapter = runtime.providers.adapter(account)
    if order.kind == OrderKind.TOPUP:
        return await _resolve_topup(runtime, order, adapter)
    # A read, so safe to retry at once; a lasting failure leaves it to the next pass.
    purchase = await retry_read(lambda: adapter.get_order(order.reference, order.provider_order_id))
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        if purchase is None:
            fresh = await OrderRepository(session).locked(order_id)
            if fresh is not None and fresh.status == OrderStatus.PENDING:
                # The upstream has no order under our reference: it never bought anything.
                await fail_order(session, runtime, fresh, "the provider has no such order")
        else:
            await settle(session, runtime, order_id, Outcome(purchase=purchase))
            fresh = await OrderRepository(session).locked(order_id)
            deadline = timedelta(hours=runtime.settings.pending_deadline_hours)
            if (
                fresh is not None
                and fresh.status == OrderStatus.PENDING
                and now - fresh.created_at >= deadline
            ):
                await fail_order(
                    session, runtime, fresh, "not provisioned before the deadline; refunded"
                )
        refreshed = await session.get(Order, order_id)
        assert refreshed is not None
        return refreshed.status


async def _resolve_topup(runtime: Runtime, order: Order, adapter: Provider) -> str:
    """Top-ups are settled by repeating the call with the same reference: the port requires
    ``top_up`` to be idempotent on it (adapters for upstreams that do not dedupe look the
    top-up up first)."""
    async with runtime.sessions() as session:
        esim = await session.get(Esim, order.esim_id) if order.esim_id else None
    if esim is None:
        return order.status
    request = TopUpRequest(
        reference=order.reference,
        esim=EsimRef(esim.iccid, esim.provider_esim_id),
        provider_code=order.provider_code,
        quantity=order.quantity,
    )
    outcome = await call_provider(runtime, order.reference, adapter.top_up(request))
    if outcome.failover:
        # This repeat surely never reached the upstream, which says nothing about the first
        # call: that one may have been applied. Failing now would refund a top-up the
        # upstream made; leave it pending and ask again on the next pass.
        return order.status
    async with runtime.sessions() as session, session.begin():
        await settle(session, runtime, order.id, outcome)
        refreshed = await session.get(Order, order.id)
        assert refreshed is not None
        return refreshed.status


@job("orders.settle")
async def settle_order(runtime: Runtime, payload: dict[str, Any]) -> None:
    """Poll the provider for a pending order until it completes or fails."""
    status = await resolve(runtime, int(payload["order_id"]))
    if status == OrderStatus.PENDING:
        raise StillPending(f"order {payload['order_id']} is still pending upstream")


@job("orders.reconcile", every=timedelta(minutes=1))
async def reconcile(runtime: Runtime, _payload: dict[str, Any]) -> None:
    """Resolve every order pending for longer than the reconciliation delay."""
    await reconcile_pending(runtime)


async def reconcile_pending(runtime: Runtime) -> dict[str, int]:
    """One pass over old pending orders; counts of the statuses they ended in."""
    cutoff = runtime.clock.now() - timedelta(seconds=runtime.settings.reconcile_after_seconds)
    async with runtime.sessions() as session:
        order_ids = await OrderRepository(session).pending_before(cutoff)
    counts: dict[str, int] = {}
    for order_id in order_ids:
        try:
            status = await resolve(runtime, order_id)
        except ProviderError as exc:
            log.warning("reconcile order %s: provider error %s", order_id, exc.message)
            status = "unreachable"
        except Exception:
            # An adapter bug on one order (say, a response it cannot parse) must not end the
            # pass: the oldest pending order comes first every time, so one poison order would
            # otherwise keep every later one pending, its money held, for ever.
            log.exception("reconcile order %s: unexpected error", order_id)
            status = "error"
        counts[status] = counts.get(status, 0) + 1
    return counts
