"""The simulator's autopilot: simulated eSIMs live on their own, so dashboards and load tests see
live data (``serve --demo`` turns it on; otherwise ``ESIMGATE_SIMULATOR_AUTOPILOT=true``).

Every run picks at most ``MAX_PER_RUN`` live eSIMs of the simulator provider accounts and moves
each at most one step along an operator's timeline, through the adapter's own device-side
methods (exactly what ``esimgate sim …`` does): released → installed on a device → attached to a
network of a covered country → using data → depleted, with a few expiring or deleted on the way.
Only forward steps exist, so a state never goes back.

Choices are random but seeded: an eSIM's device, IMEI, country and appetite for data come from
the simulator's seed and its ICCID (the same eSIM always gets the same phone), and the dice of a
run from the seed and the run's time, so a run replayed on a frozen clock does the same thing.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from esimgate.clock import epoch_ms
from esimgate.providers.base import Coverage, LogicalError
from esimgate.providers.models import ProviderAccount
from esimgate.providers.simulator.adapter import SimulatorProvider
from esimgate.providers.simulator.iccid import luhn_check_digit
from esimgate.providers.simulator.models import (
    LineState,
    PlanState,
    ProfileState,
    SimEsim,
    SimOrder,
)
from esimgate.worker.jobs import job

if TYPE_CHECKING:
    from esimgate.runtime import Runtime

Sessions = async_sessionmaker[AsyncSession]

log = logging.getLogger(__name__)

KIND: Final = "simulator.autopilot"
EVERY: Final = timedelta(seconds=30)
MAX_PER_RUN: Final = 50  # eSIMs moved per run, over all simulator accounts: never a flood
CANDIDATES: Final = 2_000  # live eSIMs considered per account and run (the newest)

# Phones people travel with, and a plausible Type Allocation Code prefix for each maker.
DEVICES: Final = (
    ("iPhone 16 Pro", "35"),
    ("iPhone 16", "35"),
    ("iPhone 15", "35"),
    ("iPhone 14 Pro", "35"),
    ("iPhone SE (3rd generation)", "35"),
    ("Samsung Galaxy S24", "35"),
    ("Samsung Galaxy S23 Ultra", "35"),
    ("Samsung Galaxy Z Flip5", "35"),
    ("Google Pixel 9", "35"),
    ("Google Pixel 8a", "35"),
    ("Motorola edge 50", "35"),
    ("Xiaomi 14", "86"),
    ("OnePlus 12", "86"),
    ("iPad Pro 11-inch (M4)", "35"),
)

# The chance of each step per run, for an eSIM picked in that run.
P_INSTALL: Final = 0.45
P_NEVER_INSTALLED_EXPIRES: Final = 0.01  # the install window lapses
P_ATTACH: Final = 0.6
P_DELETE_BEFORE_USE: Final = 0.01
P_USE: Final = 0.75
P_ROAM: Final = 0.05  # a multi-country package: attach in another covered country
P_EXPIRE: Final = 0.01
P_DELETE: Final = 0.01
P_DELETE_DEPLETED: Final = 0.05
MB_PER_STEP: Final = (20, 300)
MB_PER_STEP_UNLIMITED: Final = (100, 1_500)


@dataclass(frozen=True, slots=True)
class Persona:
    """Who uses an eSIM: the same every run for one eSIM."""

    device_model: str
    imei: str
    appetite: float  # scales the data used per step


def persona(seed: int, iccid: str) -> Persona:
    rng = random.Random(f"{seed}:persona:{iccid}")  # noqa: S311 - a simulation, not security
    model, tac_prefix = rng.choice(DEVICES)
    body = tac_prefix + "".join(str(rng.randrange(10)) for _ in range(12))
    return Persona(model, body + luhn_check_digit(body), rng.uniform(0.5, 1.5))


def _live() -> tuple[ColumnElement[bool], ...]:
    """Rows the autopilot may still move (time-expired ones are left to ``settle``)."""
    return (
        SimEsim.profile_state.in_((ProfileState.RELEASED, ProfileState.ENABLED)),
        SimEsim.line_state.in_((LineState.NOT_ACTIVE, LineState.ACTIVE)),
        SimEsim.plan_state.in_((PlanState.UNUSED, PlanState.IN_USE, PlanState.DEPLETED)),
    )


async def _candidates(sim: SimulatorProvider, sessions: Sessions, now: datetime) -> list[str]:
    query = (
        select(SimEsim.iccid)
        .join(SimOrder, SimOrder.id == SimEsim.order_id)
        .where(SimOrder.account == sim.account, *_live())
        .where(or_(SimEsim.expires_at.is_(None), SimEsim.expires_at > now))
        .order_by(SimEsim.id.desc())
        .limit(CANDIDATES)
    )
    async with sessions() as session:
        return list((await session.scalars(query)).all())


async def advance(
    sim: SimulatorProvider, sessions: Sessions, now: datetime, *, limit: int = MAX_PER_RUN
) -> Counter[str]:
    """One run for one simulator: move at most ``limit`` eSIMs one step; counts what happened."""
    done: Counter[str] = Counter()
    if limit <= 0:
        return done
    iccids = await _candidates(sim, sessions, now)
    rng = random.Random(f"{sim.seed}:run:{sim.account}:{epoch_ms(now)}")  # noqa: S311
    picked = rng.sample(iccids, min(limit, len(iccids)))
    if not picked:
        return done
    packages = {p.provider_code: p for p in await sim.list_packages()}
    async with sessions() as session:
        rows = (await session.scalars(select(SimEsim).where(SimEsim.iccid.in_(picked)))).all()
        states = {row.iccid: row for row in rows}
    for iccid in sorted(picked):
        row = states.get(iccid)
        if row is None:
            continue
        package = packages.get(row.package_code)
        coverage: tuple[Coverage, ...] = tuple(package.coverage) if package else ()
        try:
            step = await _step(sim, row, coverage, rng)
        except (LogicalError, ValueError) as exc:
            # Someone (a command, another worker) moved it first: next run sees the new state.
            log.debug("autopilot skipped %s: %s", iccid, exc)
            step = "skipped"
        done[step] += 1
    return done


async def _step(
    sim: SimulatorProvider, esim: SimEsim, coverage: tuple[Coverage, ...], rng: random.Random
) -> str:
    """At most one forward step for one eSIM; returns its name ("idle" when it rests)."""
    who = persona(sim.seed, esim.iccid)
    dice = rng.random()
    if esim.profile_state == ProfileState.RELEASED:
        if dice < P_INSTALL:
            await sim.install(esim.iccid, who.device_model, who.imei)
            return "installed"
        if dice > 1 - P_NEVER_INSTALLED_EXPIRES:
            await sim.expire(esim.iccid)
            return "expired"
        return "idle"
    if esim.plan_state == PlanState.DEPLETED:
        if dice < P_DELETE_DEPLETED:
            await sim.delete(esim.iccid)
            return "deleted"
        return "idle"
    if esim.line_state == LineState.NOT_ACTIVE:
        if dice < P_ATTACH:
            await sim.attach(esim.iccid, _country(sim.seed, esim.iccid, coverage))
            return "attached"
        if dice > 1 - P_DELETE_BEFORE_USE:
            await sim.delete(esim.iccid)
            return "deleted"
        return "idle"
    # Attached and in use.
    if dice < P_USE:
        low, high = MB_PER_STEP if esim.total_bytes is not None else MB_PER_STEP_UNLIMITED
        megabytes = round(rng.uniform(low, high) * who.appetite, 1)
        await sim.use(esim.iccid, max(megabytes, 1.0))
        return "used"
    if dice < P_USE + P_ROAM and len(coverage) > 1:
        await sim.attach(esim.iccid, rng.choice(coverage).country_code)
        return "roamed"
    if dice > 1 - P_EXPIRE:
        await sim.expire(esim.iccid)
        return "expired"
    if dice > 1 - P_EXPIRE - P_DELETE:
        await sim.delete(esim.iccid)
        return "deleted"
    return "idle"


def _country(seed: int, iccid: str, coverage: tuple[Coverage, ...]) -> str | None:
    """The country an eSIM's traveller lands in first (stable per eSIM)."""
    if not coverage:
        return None
    rng = random.Random(f"{seed}:country:{iccid}")  # noqa: S311
    return rng.choice(coverage).country_code


async def simulators(runtime: Runtime) -> list[SimulatorProvider]:
    """The adapters of the enabled simulator provider accounts (never a real upstream)."""
    async with runtime.sessions() as session:
        accounts = (
            await session.scalars(
                select(ProviderAccount)
                .where(
                    ProviderAccount.kind == SimulatorProvider.kind,
                    ProviderAccount.enabled.is_(True),
                )
                .order_by(ProviderAccount.id)
            )
        ).all()
    found = []
    for account in accounts:
        adapter = runtime.providers.adapter(account)
        if isinstance(adapter, SimulatorProvider):
            found.append(adapter)
    return found


async def run_autopilot(runtime: Runtime, *, limit: int = MAX_PER_RUN) -> Counter[str]:
    """One autopilot run over every simulator account; a no-op unless the setting is on."""
    done: Counter[str] = Counter()
    if not runtime.settings.simulator_autopilot:
        return done
    now = runtime.clock.now()
    for sim in await simulators(runtime):
        done += await advance(sim, runtime.sessions, now, limit=limit - done.total())
    if done:
        log.info("simulator autopilot: %s", dict(done))
    return done


@job(KIND, every=EVERY)
async def autopilot(runtime: Runtime, payload: dict[str, Any]) -> None:
    await run_autopilot(runtime)
