"""Cases the whole-system simulation found, written out as plain steps of its machine (the
invariants are checked after every step, as in the simulation), plus a focused test of each
fix."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from esimgate.clock import FrozenClock
from esimgate.orders.models import Order
from esimgate.orders.tasks import reconcile_pending
from esimgate.providers.base import Purchase
from esimgate.providers.repository import ProviderAccountRepository
from esimgate.runtime import Runtime
from tests.fakes.faulty import FaultyProvider, UpstreamCrash
from tests.orders.test_place_order import ORDER, package
from tests.simulation.test_whole_system import WholeSystem
from tests.support import SignedClient

Step = tuple[str, dict[str, Any]]


def replay(machine: type[WholeSystem], steps: list[Step]) -> None:
    state = machine()
    try:
        for name, arguments in steps:
            getattr(state, name)(**arguments)
            state.books_balance()
            state.orders_match_the_ledger_and_the_upstream()
            state.accounts_see_only_their_own()
    finally:
        state.teardown()


def test_reconciliation_survives_an_adapter_crash(whole_system: type[WholeSystem]) -> None:
    """The upstream committed, the reply was lost; then the adapter crashes on every read of
    the order. Reconciliation must log it and carry on, not end the pass with the exception."""
    replay(
        whole_system,
        [
            ("open_first_account", {"credits": 1_000, "markup": 0}),
            ("open_second_account", {"credits": 300, "markup": 0}),
            (
                "place_order",
                {
                    "who": 0,
                    "kind": "sync",
                    "quantity": 1,
                    "key": None,
                    "key_in_header": False,
                    "guard": "none",
                    "fault": "timeout_after_commit",
                },
            ),
            (
                "set_faults",
                {"create": "ok", "read": "crash_after_commit", "topup": "ok", "usage": "ok"},
            ),
            ("advance_clock", {"seconds": 121}),
            ("background", {"what": "reconcile", "fault": None}),
        ],
    )


class PoisonOrder(FaultyProvider):
    """The adapter crashes reading one particular order (say, a record it cannot parse)."""

    poison = ""

    async def get_order(
        self, reference: str, provider_order_id: str | None = None
    ) -> Purchase | None:
        if reference == self.poison:
            raise UpstreamCrash(f"cannot parse the upstream's record of {reference}")
        return await super().get_order(reference, provider_order_id)


async def test_one_poison_order_does_not_hold_up_the_others(
    api: SignedClient, runtime: Runtime, clock: FrozenClock
) -> None:
    async with runtime.sessions() as session:
        account = await ProviderAccountRepository(session).by_name("simulator")
    assert account is not None
    upstream = PoisonOrder(runtime.providers.adapter(account))
    runtime.providers.override(account.id, upstream)
    code = (await package(runtime, "Turkey"))["code"]
    upstream.create_mode = "timeout_after_commit"  # bought upstream, reply lost: both pending
    references = []
    for _ in range(2):
        response = await api.post(ORDER, {"packageCode": code})
        assert response.json()["status"] == "pending_details", response.text
        references.append(response.json()["orderReference"])
        clock.advance(seconds=1)
    upstream.poison = references[0]  # the oldest: first in every reconciliation pass
    clock.advance(seconds=runtime.settings.reconcile_after_seconds + 1)
    assert await reconcile_pending(runtime) == {"error": 1, "completed": 1}
    async with runtime.sessions() as session:
        statuses = dict((await session.execute(select(Order.reference, Order.status))).all())
    assert statuses == {references[0]: "pending", references[1]: "completed"}
    upstream.poison = ""
    assert await reconcile_pending(runtime) == {"completed": 1}


def test_a_refused_repeat_does_not_fail_an_applied_topup(whole_system: type[WholeSystem]) -> None:
    replay(
        whole_system,
        [
            ("open_first_account", {"credits": 3_000, "markup": 0}),
            ("open_second_account", {"credits": 300, "markup": 0}),
            (
                "place_order",
                {
                    "who": 0,
                    "kind": "sync",
                    "quantity": 1,
                    "key": None,
                    "key_in_header": False,
                    "guard": "none",
                    "fault": "ok",
                },
            ),
            ("top_up", {"pick": 0, "quantity": 1, "bogus": False, "fault": "timeout_after_commit"}),
            ("set_faults", {"create": "ok", "read": "ok", "topup": "unavailable", "usage": "ok"}),
            ("advance_clock", {"seconds": 11}),
            ("background", {"what": "worker", "fault": None}),
        ],
    )


def order(who: int, fault: str | None, kind: str = "plain") -> Step:
    return (
        "place_order",
        {
            "who": who,
            "kind": kind,
            "quantity": 1,
            "key": None,
            "key_in_header": False,
            "guard": "none",
            "fault": fault,
        },
    )


def test_a_killed_probe_does_not_jam_the_circuit(whole_system: type[WholeSystem]) -> None:
    replay(
        whole_system,
        [
            ("open_first_account", {"credits": 3_000, "markup": 0}),
            ("open_second_account", {"credits": 300, "markup": 0}),
            *[order(0, "unavailable") for _ in range(5)],
            ("advance_clock", {"seconds": 31}),
            order(0, "killed_before_call"),
            order(0, "ok"),
        ],
    )
