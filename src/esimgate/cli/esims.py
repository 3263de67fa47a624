"""`esimgate esims …`: operator actions on sold eSIMs, carried out at their upstream."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from esimgate.esims.models import Esim
from esimgate.esims.refresh import pull
from esimgate.providers.base import Capability, EsimRef, ProviderError, Suspender
from esimgate.providers.models import ProviderAccount
from esimgate.runtime import Runtime

esims_app = typer.Typer(no_args_is_help=True, help="Operator actions on sold eSIMs.")
console = Console()


class EsimActionError(LookupError):
    """No such eSIM, an upstream that cannot do it, or the upstream refused."""


@esims_app.command("suspend")
def suspend(iccid: str) -> None:
    """Bar an eSIM's service at its upstream (fraud, a lost phone); `resume` lifts it. The
    Business API has no status word for it (a suspended eSIM reads ACTIVE or NEW there)."""
    _act(iccid, suspend=True)


@esims_app.command("resume")
def resume(iccid: str) -> None:
    """Lift a suspension."""
    _act(iccid, suspend=False)


def _act(iccid: str, *, suspend: bool) -> None:
    from esimgate.cli.main import run

    if not (iccid.isdigit() and 18 <= len(iccid) <= 22):
        raise typer.BadParameter("an ICCID is 18 to 22 digits", param_hint="ICCID")

    async def work(runtime: Runtime) -> str:
        async with runtime.sessions() as session:
            esim = await session.scalar(
                select(Esim).where(Esim.iccid == iccid).order_by(Esim.id.desc()).limit(1)
            )
            if esim is None:
                raise EsimActionError(f"no eSIM {iccid}")
            account = await session.get(ProviderAccount, esim.provider_account_id)
            assert account is not None
        adapter = runtime.providers.adapter(account)
        if not isinstance(adapter, Suspender) or Capability.SUSPEND not in adapter.capabilities:
            raise EsimActionError(
                f"provider account {account.name!r} ({account.kind}) cannot suspend eSIMs"
            )
        ref = EsimRef(esim.iccid, esim.provider_esim_id)
        try:
            if suspend:
                await adapter.suspend(ref)
            else:
                await adapter.resume(ref)
            fresh = await pull(runtime, esim.id)  # store what the upstream now reports
        except ProviderError as exc:
            raise EsimActionError(f"{account.name}: {exc.message}") from None
        return f"line {fresh.line_status or 'UNKNOWN'}, status {fresh.status}"

    state = run(work)
    action = "suspended" if suspend else "resumed"
    console.print(f"eSIM {escape(iccid)} {action}; now {escape(state)}")
