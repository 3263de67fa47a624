"""The catalogue's API shapes (spec section 5)."""

from __future__ import annotations

from typing import Any

from esimgate.catalog.service import Priced, flag_url
from esimgate.money import render

GIB = 1024**3


def data_amount_gb(data_bytes: int | None) -> int | float:
    """Binary GB; whole numbers print as integers, fractions keep up to 3 decimals."""
    if data_bytes is None:
        return 0
    if data_bytes % GIB == 0:
        return data_bytes // GIB
    return round(data_bytes / GIB, 3)


def package_json(row: Priced, currency: str) -> dict[str, Any]:
    package = row.package
    countries = package.countries
    single = countries[0]["code"] if package.kind == "local" and countries else None
    return {
        "package_code": package.code,
        "name": package.name,
        "region": package.region,
        "type": package.kind,
        "countries": [c["name"] for c in countries],
        "country_codes": [c["code"] for c in countries],
        "data_amount_gb": data_amount_gb(package.data_bytes),
        "validity_days": package.validity_days,
        "cost": render(row.price_minor, currency),
        "currency": currency,
        "features": {
            "voice_minutes": package.voice_minutes,
            "sms_count": package.sms_count,
            "is_rechargeable": package.rechargeable or package.is_topup,
        },
        "is_unlimited": package.data_bytes is None,
        "has_voice": package.voice_minutes > 0,
        "has_sms": package.sms_count > 0,
        "is_daily": package.daily_data,
        "locationNetworkList": package.networks,
        "flag_url": flag_url(single),
    }
