"""eSIM API shapes (spec 7.1): usage arithmetic in binary MB, validity, install payloads."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from esimgate.catalog.models import CatalogPackage
from esimgate.catalog.service import flag_url
from esimgate.clock import iso_z
from esimgate.esims.install import qr_png
from esimgate.esims.models import Esim
from esimgate.esims.presenter import install_links, qr_url

MIB = 1024 * 1024


def megabytes(num_bytes: int) -> int | float:
    """Binary MB, whole when exact, else two decimals."""
    if num_bytes % MIB == 0:
        return num_bytes // MIB
    return round(num_bytes / MIB, 2)


def data_block(esim: Esim) -> dict[str, Any]:
    """total/used/remaining MB and a 0–100 percentage, even when a provider reports overuse."""
    used = max(0, esim.used_bytes)
    if esim.total_bytes is None:
        return {
            "total_mb": 0,
            "used_mb": megabytes(used),
            "remaining_mb": 0,
            "usage_percentage": 0,
            "is_unlimited": True,
        }
    total = esim.total_bytes
    remaining = max(0, total - used)
    percentage = 100.0 if total == 0 else min(100.0, used * 100 / total)
    return {
        "total_mb": megabytes(total),
        "used_mb": megabytes(used),
        "remaining_mb": megabytes(remaining),
        "usage_percentage": round(percentage, 2),
        "is_unlimited": False,
    }


def validity_block(esim: Esim, now: datetime) -> dict[str, Any]:
    return {
        "days": esim.validity_days,
        "activated_at": iso_z(esim.activated_at),
        "expires_at": iso_z(esim.expires_at),
        "is_expired": esim.expires_at is not None and esim.expires_at <= now,
    }


def esim_json(
    esim: Esim,
    package: CatalogPackage,
    *,
    base_url: str,
    now: datetime,
    include_base64: bool = False,
) -> dict[str, Any]:
    links = install_links(esim)
    single = package.countries[0]["code"] if package.kind == "local" and package.countries else None
    out: dict[str, Any] = {
        "id": esim.id,
        "iccid": esim.iccid,
        "package_name": package.name,
        "package_code": package.code,
        "countries": [c["name"] for c in package.countries],
        "status": esim.status,
        "data": data_block(esim),
        "validity": validity_block(esim, now),
        "qr_code": qr_url(base_url, esim),
        "manual_installation": {
            "smdp_address": esim.smdp_address,
            "activation_code": esim.matching_id,
            "lpa_format": esim.lpa,
        },
        "direct_apple_installation_url": links["directAppleInstallUrl"],
        "direct_android_installation_url": links["directAndroidInstallUrl"],
        "flag_url": flag_url(single),
        "created_at": iso_z(esim.created_at),
        "usage_updated_at": iso_z(esim.usage_updated_at),
    }
    if include_base64:
        out["qr_code_base64"] = base64.b64encode(qr_png(esim.lpa)).decode()
    return out
