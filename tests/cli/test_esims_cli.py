"""`esimgate esims suspend|resume ICCID`: carried out at the upstream (the simulator here), and
the stored status follows what the upstream then reports."""

from __future__ import annotations

from esimgate.config import Settings
from tests.cli.test_cli import esimgate, ok, refused
from tests.cli.test_sim_cli import UNKNOWN_ICCID, buy, flat, live, sim_row


def test_suspend_and_resume_an_attached_esim(cli_settings: Settings) -> None:
    iccid, creds = buy(cli_settings)
    ok(esimgate("sim", "install", iccid))
    ok(esimgate("sim", "attach", iccid))
    assert live(cli_settings, creds, iccid)["status"] == "ACTIVE"

    out = flat(ok(esimgate("esims", "suspend", iccid)).stdout)
    # The Business API has no word for a suspended line: it still reads ACTIVE there.
    assert f"eSIM {iccid} suspended; now line SUSPENDED, status ACTIVE" in out, out
    assert sim_row(cli_settings, iccid).line_state == "suspended"
    refused(esimgate("sim", "use", iccid, "5"), "not attached")  # no service while barred
    ok(esimgate("esims", "suspend", iccid))  # repeating is harmless

    out = flat(ok(esimgate("esims", "resume", iccid)).stdout)
    assert f"eSIM {iccid} resumed; now line ACTIVE, status ACTIVE" in out, out
    assert sim_row(cli_settings, iccid).line_state == "active"
    ok(esimgate("sim", "use", iccid, "5"))


def test_resuming_a_never_attached_esim_leaves_it_new(cli_settings: Settings) -> None:
    iccid, creds = buy(cli_settings)
    out = flat(ok(esimgate("esims", "suspend", iccid)).stdout)
    assert "now line SUSPENDED, status NEW" in out, out
    out = flat(ok(esimgate("esims", "resume", iccid)).stdout)
    assert "now line NOT_ACTIVE, status NEW" in out, out
    assert sim_row(cli_settings, iccid).line_state == "not_active"
    assert live(cli_settings, creds, iccid)["status"] == "NEW"


def test_refusals(cli_settings: Settings) -> None:
    refused(esimgate("esims", "suspend", UNKNOWN_ICCID), f"no eSIM {UNKNOWN_ICCID}")
    bad = esimgate("esims", "suspend", "12ab")
    assert bad.exit_code == 2 and "18 to 22 digits" in flat(bad.output), bad.output
    iccid, creds = buy(cli_settings)
    ok(esimgate("sim", "install", iccid))
    ok(esimgate("sim", "attach", iccid))
    ok(esimgate("esims", "suspend", iccid))
    ok(esimgate("esims", "resume", iccid))
    assert live(cli_settings, creds, iccid)["status"] == "ACTIVE"
