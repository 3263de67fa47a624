"""Install payloads: SGP.22 LPA activation codes, one-tap install links, QR codes."""

from __future__ import annotations

import base64
import io
import re
from functools import lru_cache
from urllib.parse import quote

import segno

# LPA:1$<SM-DP+ address>$<matching id>[$<SM-DP+ OID>[$1]] (GSMA SGP.22 §4.1). The address is a
# host name; the matching id is printable and has no '$'. The confirmation code itself never
# appears in the string, only the flag that one is required.
LPA = re.compile(
    r"LPA:1\$(?P<smdp>[A-Za-z0-9.-]{1,253})\$(?P<matching>[^$\s]{0,255})(\$[0-9.]*(\$1)?)?"
)

APPLE = "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata="
ANDROID = "https://esimsetup.android.com/esim_qrcode_provisioning?carddata="


class InvalidLpa(ValueError):
    """An activation code that is not an SGP.22 LPA string."""


def build_lpa(smdp_address: str, matching_id: str, *, confirmation_required: bool = False) -> str:
    lpa = f"LPA:1${smdp_address}${matching_id}"
    if confirmation_required:
        lpa += "$$1"
    validate_lpa(lpa)
    return lpa


def validate_lpa(lpa: str) -> str:
    if not LPA.fullmatch(lpa):
        raise InvalidLpa(f"not an SGP.22 activation code: {lpa!r}")
    return lpa


def apple_install_url(lpa: str) -> str:
    return APPLE + quote(lpa, safe="")


def android_install_url(lpa: str) -> str:
    return ANDROID + quote(lpa, safe="")


@lru_cache(maxsize=4096)
def qr_png(lpa: str, scale: int = 6) -> bytes:
    """The QR image (encoding one costs milliseconds: recent ones are kept)."""
    buffer = io.BytesIO()
    segno.make(lpa, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


@lru_cache(maxsize=1024)
def qr_svg(lpa: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(lpa, error="m", micro=False).save(buffer, kind="svg", scale=6, border=4)
    return buffer.getvalue()


def qr_data_url(lpa: str) -> str:
    """The QR as a ``data:image/png;base64,`` URL, as the seeds' order responses carry it."""
    return "data:image/png;base64," + base64.b64encode(qr_png(lpa)).decode()
