"""Identifiers the simulator issues: Luhn-valid ICCIDs and IMEIs, SGP.22 activation codes."""

from __future__ import annotations

import re

import pytest

from esimgate.providers.simulator.iccid import (
    ICCID_PREFIX,
    SMDP_ADDRESS,
    esim_id_for,
    iccid_for,
    imei_for,
    lpa_string,
    luhn_check_digit,
    luhn_valid,
    new_matching_id,
)


@pytest.mark.parametrize(
    "number",
    [
        "79927398713",  # the textbook example
        "8943108170000775671",  # an eSIM Access ICCID from its docs
        "356938035643809",  # a published example IMEI
    ],
)
def test_luhn_accepts_known_valid_numbers(number: str) -> None:
    assert luhn_valid(number)
    assert luhn_check_digit(number[:-1]) == number[-1]


@pytest.mark.parametrize("number", ["79927398710", "8943108170000775672", "", "7", "12a4"])
def test_luhn_rejects_wrong_or_malformed_numbers(number: str) -> None:
    assert not luhn_valid(number)


def test_iccids_are_19_luhn_valid_digits_under_the_simulator_issuer() -> None:
    for serial in (0, 1, 42, 10**11 - 1):
        iccid = iccid_for(serial)
        assert re.fullmatch(r"89\d{17}", iccid)
        assert iccid.startswith(ICCID_PREFIX)
        assert luhn_valid(iccid)
    assert len({iccid_for(s) for s in range(10_000)}) == 10_000


def test_iccid_serial_out_of_range() -> None:
    for serial in (-1, 10**11):
        with pytest.raises(ValueError, match="serial"):
            iccid_for(serial)


def test_esim_ids_and_activation_codes() -> None:
    assert esim_id_for(123) == "SIMT0000000000000123"
    matching_ids = {new_matching_id() for _ in range(100)}
    assert len(matching_ids) == 100
    assert all(re.fullmatch(r"[0-9A-F]{32}", m) for m in matching_ids)
    assert lpa_string(SMDP_ADDRESS, "ABC") == "LPA:1$rsp.simulator.esimgate.invalid$ABC"


def test_made_up_imeis_are_valid_and_stable() -> None:
    imei = imei_for("8999901000000000005")
    assert len(imei) == 15
    assert luhn_valid(imei)
    assert imei_for("8999901000000000005") == imei
