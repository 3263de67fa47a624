"""`esimgate sim …` through Typer's CliRunner against the test database: an eSIM bought over HTTP,
then driven through its life by the exact command forms scripts rely on."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from esimgate.accounts.service import NewAccount, create_account
from esimgate.app import create_app
from esimgate.auth.keys import issue_key
from esimgate.clock import epoch_ms
from esimgate.config import Settings
from esimgate.providers.simulator.models import SimEsim
from esimgate.runtime import Runtime
from esimgate.wallet.service import credit
from tests.cli.test_cli import esimgate, ok, refused, with_runtime
from tests.orders.test_place_order import ORDER, package
from tests.support import Credentials, SignedClient

BUSINESS = "/api/v1/business"
IMEI = "356938035643809"  # Luhn-valid
UNKNOWN_ICCID = "8999901999999999990"


async def _http(runtime: Runtime, creds: Credentials, method: str, path: str, body: Any) -> Any:
    application = create_app(runtime=runtime, migrate=False, embedded_worker=False)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://esimgate.test") as http:
        api = SignedClient(http, creds, lambda: epoch_ms(runtime.clock.now()))
        response = await (api.post(path, body) if method == "POST" else api.get(path))
    assert response.status_code == 200, response.text
    return response.json()


def buy(settings: Settings, country: str = "Australia") -> tuple[str, Credentials]:
    """An account with money, and one eSIM it ordered over HTTP; returns its ICCID."""

    async def work(runtime: Runtime) -> tuple[str, Credentials]:
        async with runtime.sessions() as session, session.begin():
            account = await create_account(session, runtime.clock, NewAccount("traveller"))
            await credit(session, runtime.clock, account.id, 50_000, "test")
            issued = await issue_key(session, runtime.clock, runtime.box, account.id)
        creds = Credentials(account.id, issued.key.access_code, issued.secret_key)
        pkg = await package(runtime, country)
        order = await _http(runtime, creds, "POST", ORDER, {"packageCode": pkg["code"]})
        return order["esims"][0]["iccid"], creds

    return with_runtime(settings, work)


def live(settings: Settings, creds: Credentials, iccid: str) -> dict[str, Any]:
    async def work(runtime: Runtime) -> dict[str, Any]:
        body = await _http(runtime, creds, "POST", f"{BUSINESS}/esims/status", {"iccid": iccid})
        data: dict[str, Any] = body["data"]
        return data

    return with_runtime(settings, work)


def sim_row(settings: Settings, iccid: str) -> SimEsim:
    async def work(runtime: Runtime) -> SimEsim:
        async with runtime.sessions() as session:
            row = await session.scalar(select(SimEsim).where(SimEsim.iccid == iccid))
        assert row is not None, iccid
        return row

    return with_runtime(settings, work)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_an_esim_through_its_life(cli_settings: Settings) -> None:
    iccid, creds = buy(cli_settings)
    assert live(cli_settings, creds, iccid)["status"] == "NEW"

    out = flat(
        ok(esimgate("sim", "install", iccid, "--device-model", "Pixel 9", "--imei", IMEI)).stdout
    )
    assert f"{iccid}: profileState=ENABLED, lineState=NOT_ACTIVE, planState=UNUSED" in out, out
    assert f"device Pixel 9 IMEI {IMEI}" in out, out

    out = flat(ok(esimgate("sim", "attach", iccid, "--country", "au")).stdout)
    assert "profileState=ENABLED, lineState=ACTIVE, planState=IN_USE" in out, out
    row = sim_row(cli_settings, iccid)
    assert row.network_country == "AU" and row.network_mcc == "505"
    assert f"on {row.network_operator} (505/{row.network_mnc}, AU, " in out, out
    assert "expires " in out, out

    out = flat(ok(esimgate("sim", "use", iccid, "100")).stdout)
    assert "used 100.00 MB of " in out, out
    # No reporting lag by default: the next live call sees the command's effect.
    state = live(cli_settings, creds, iccid)
    assert state["status"] == "ACTIVE"
    assert state["device"] == {"model": "Pixel 9", "imei": IMEI}
    assert state["last_network"]["country_iso2"] == "AU"
    assert state["data_usage"]["used_gb"] == pytest.approx(100 / 1024, abs=0.01)

    out = flat(ok(esimgate("sim", "use", iccid, "0.5")).stdout)
    assert "used 100.50 MB of " in out, out

    out = flat(ok(esimgate("sim", "expire", iccid)).stdout)
    assert "planState=EXPIRED" in out, out
    assert live(cli_settings, creds, iccid)["status"] == "EXPIRED"

    out = flat(ok(esimgate("sim", "delete", iccid)).stdout)
    assert "profileState=DELETED" in out, out
    assert sim_row(cli_settings, iccid).profile_state == "deleted"


def test_attach_without_a_country_uses_the_package_country(cli_settings: Settings) -> None:
    iccid, _ = buy(cli_settings)
    ok(esimgate("sim", "install", iccid))  # a made-up device and IMEI
    out = flat(ok(esimgate("sim", "attach", iccid)).stdout)
    assert ", AU, " in out, out


@pytest.mark.parametrize(
    "command",
    [
        ["install", UNKNOWN_ICCID],
        ["attach", UNKNOWN_ICCID, "--country", "AU"],
        ["use", UNKNOWN_ICCID, "5"],
        ["expire", UNKNOWN_ICCID],
        ["delete", UNKNOWN_ICCID],
    ],
)
def test_an_unknown_iccid_is_refused(cli_settings: Settings, command: list[str]) -> None:
    refused(esimgate("sim", *command), f"error: no eSIM with ICCID {UNKNOWN_ICCID}")


@pytest.mark.parametrize(
    ("before", "command", "message"),
    [
        ([], ["install", "{iccid}", "--imei", "356938035643808"], "not a valid 15-digit IMEI"),
        ([], ["install", "{iccid}", "--imei", "12345"], "not a valid 15-digit IMEI: '12345'"),
        ([["install", "{iccid}"]], ["attach", "{iccid}", "--country", "FR"], "FR is not covered"),
        ([], ["attach", "{iccid}"], "error: profile is released"),
        ([], ["use", "{iccid}", "5"], "error: the eSIM is not attached"),
        ([], ["use", "{iccid}", "lots"], "not a number: lots"),
        ([], ["use", "{iccid}", "0"], "error: megabytes must be positive"),
        ([], ["use", "{iccid}", "inf"], "error: megabytes must be a finite number"),
        ([], ["use", "{iccid}", "NaN"], "error: megabytes must be a finite number"),
        ([], ["delete", "{iccid}"], "error: profile was never installed"),
        ([["install", "{iccid}"]], ["install", "{iccid}"], "error: profile is enabled"),
    ],
)
def test_bad_commands_are_refused_cleanly(
    cli_settings: Settings, before: list[list[str]], command: list[str], message: str
) -> None:
    iccid, _ = buy(cli_settings)
    for step in before:
        ok(esimgate("sim", *(arg.format(iccid=iccid) for arg in step)))
    untouched = sim_row(cli_settings, iccid)
    refused(esimgate("sim", *(arg.format(iccid=iccid) for arg in command)), message)
    row = sim_row(cli_settings, iccid)
    assert (row.profile_state, row.line_state, row.plan_state, row.used_bytes) == (
        untouched.profile_state,
        untouched.line_state,
        untouched.plan_state,
        untouched.used_bytes,
    )


def test_help_lists_the_sim_commands() -> None:
    result = esimgate("sim", "--help")
    assert result.exit_code == 0, result.output
    for command in ("install", "attach", "use", "expire", "delete"):
        assert command in result.stdout
