"""Identifiers the simulator hands out: ICCIDs, its own eSIM ids, activation codes, IMEIs.

ICCIDs follow ITU-T E.118: ``89`` (telecom) + country calling code + issuer id + serial + a Luhn
check digit, 19 digits in all. The simulator issues under country code 999, which E.164 reserves
and assigns to nobody, so a simulated ICCID can never equal a real card's.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

ICCID_PREFIX: Final = "89" + "999" + "01"  # telecom, reserved country code, simulator issuer
ICCID_LENGTH: Final = 19
_SERIAL_DIGITS: Final = ICCID_LENGTH - len(ICCID_PREFIX) - 1
SMDP_ADDRESS: Final = "rsp.simulator.esimgate.invalid"
"""The simulator's SM-DP+ host: the .invalid TLD never resolves, so no phone can install it."""


def luhn_check_digit(digits: str) -> str:
    """The digit that makes ``digits + check`` pass the Luhn test."""
    total = 0
    # Walking right to left, the digit next to the (future) check digit is doubled first.
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and len(number) > 1 and luhn_check_digit(number[:-1]) == number[-1]


def iccid_for(serial: int) -> str:
    """The ICCID with this serial; distinct serials give distinct ICCIDs."""
    if not 0 <= serial < 10**_SERIAL_DIGITS:
        raise ValueError(f"ICCID serial out of range: {serial}")
    body = f"{ICCID_PREFIX}{serial:0{_SERIAL_DIGITS}d}"
    return body + luhn_check_digit(body)


def esim_id_for(serial: int) -> str:
    """The simulator's stable per-eSIM key (like eSIM Access ``esimTranNo``): SIMT + 16 digits."""
    return f"SIMT{serial:016d}"


def new_matching_id() -> str:
    """An unguessable SM-DP+ matching id: it is the secret that lets a device fetch the profile."""
    return secrets.token_hex(16).upper()


def lpa_string(smdp_address: str, matching_id: str) -> str:
    """GSMA SGP.22 activation code, without confirmation-code flag."""
    return f"LPA:1${smdp_address}${matching_id}"


def imei_for(seed: str) -> str:
    """A Luhn-valid 15-digit IMEI derived from ``seed``, for devices the caller did not name."""
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    body = f"35{digest % 10**12:012d}"  # 35: a common GSMA-allocated TAC prefix
    return body + luhn_check_digit(body)
