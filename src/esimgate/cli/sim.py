"""`esimgate sim …`: drive the built-in simulator's network, as a phone and an operator would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from esimgate.esims.models import Esim
from esimgate.providers.base import LogicalError, UsageReport
from esimgate.providers.models import ProviderAccount
from esimgate.providers.simulator.adapter import SimulatorProvider
from esimgate.runtime import Runtime

sim_app = typer.Typer(no_args_is_help=True, help="The simulated network (simulator eSIMs only).")
console = Console()
MIB = 1024 * 1024


class NotSimulated(LookupError):
    """The ICCID is not an eSIM of a simulator provider account."""


async def simulator_for(runtime: Runtime, iccid: str) -> SimulatorProvider:
    async with runtime.sessions() as session:
        account_id = (
            await session.execute(
                select(Esim.provider_account_id).where(Esim.iccid == iccid).order_by(Esim.id.desc())
            )
        ).scalar()
        account = await session.get(ProviderAccount, account_id) if account_id else None
    if account is None:
        raise NotSimulated(f"no eSIM with ICCID {iccid}")
    adapter = runtime.providers.adapter(account)
    if not isinstance(adapter, SimulatorProvider):
        raise NotSimulated(f"{iccid} belongs to provider {account.name!r}, not a simulator")
    return adapter


def show(report: UsageReport) -> None:
    raw = ", ".join(f"{k}={v}" for k, v in report.raw_status.items())
    total = "unlimited" if report.total_bytes is None else f"{report.total_bytes / MIB:.2f} MB"
    console.print(f"{report.esim.iccid}: {escape(raw)}")
    console.print(f"  used {report.used_bytes / MIB:.2f} MB of {total}")
    if report.last_network is not None:
        n = report.last_network
        console.print(
            f"  on {escape(n.operator)} ({n.mcc}/{n.mnc}, {n.country_code}, {n.connection_type})"
        )
    if report.device_model:
        console.print(f"  device {escape(report.device_model)} IMEI {report.device_imei}")
    if report.expires_at is not None:
        console.print(f"  expires {report.expires_at.isoformat()}")


def _drive(iccid: str, act: Callable[[SimulatorProvider], Awaitable[UsageReport]]) -> None:
    from esimgate.cli.main import run

    async def work(runtime: Runtime) -> UsageReport:
        return await act(await simulator_for(runtime, iccid))

    show(run(work))


@sim_app.command("install")
def install(
    iccid: str,
    device_model: Annotated[str, typer.Option(help="Device model")] = "Simulated Phone",
    imei: Annotated[str | None, typer.Option(help="15-digit IMEI (Luhn-valid)")] = None,
) -> None:
    """A device downloads, installs and enables the profile."""
    _drive(iccid, lambda sim: sim.install(iccid, device_model, imei))


@sim_app.command("attach")
def attach(
    iccid: str,
    country: Annotated[str | None, typer.Option(help="ISO country code of the network")] = None,
) -> None:
    """The device attaches to a real operator of a covered country (validity starts)."""
    _drive(iccid, lambda sim: sim.attach(iccid, country.upper() if country else None))


@sim_app.command("use")
def use(iccid: str, megabytes: str) -> None:
    """The device uses MEGABYTES of data (binary MB; decimals allowed)."""
    try:
        amount = Decimal(megabytes)
    except InvalidOperation:
        raise typer.BadParameter(f"not a number: {megabytes}") from None
    _drive(iccid, lambda sim: sim.use(iccid, float(amount)))


@sim_app.command("expire")
def expire(iccid: str) -> None:
    """The plan's validity ends now."""
    _drive(iccid, lambda sim: sim.expire(iccid))


@sim_app.command("delete")
def delete(iccid: str) -> None:
    """The user deletes the profile from the device."""
    _drive(iccid, lambda sim: sim.delete(iccid))


SIM_ERRORS = (NotSimulated, LogicalError)
