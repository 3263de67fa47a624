"""The live-status shape of seed 001 (POST /esims/status)."""

from __future__ import annotations

from typing import Any

from esimgate.clock import iso_z
from esimgate.esims.models import Esim, EsimStatus

GIB = 1024**3

ESIM_STATUS_WORDS = {
    EsimStatus.NEW: "New",
    EsimStatus.ACTIVE: "Active",
    EsimStatus.EXPIRED: "Not Active",
    EsimStatus.DEPLETED: "Not Active",
    EsimStatus.CANCELLED: "Not Active",
    EsimStatus.DELETED: "Not Active",
}
PROFILE_WORDS = {"ENABLED": "Enabled", "DISABLED": "Disabled", "INSTALLED": "Enabled"}


def _gb(num_bytes: int) -> int | float:
    return num_bytes // GIB if num_bytes % GIB == 0 else round(num_bytes / GIB, 3)


def live_json(esim: Esim) -> dict[str, Any]:
    network = esim.last_network or {}
    installed = (esim.profile_status or "").upper() in PROFILE_WORDS
    esim_status = ESIM_STATUS_WORDS[EsimStatus(esim.status)]
    if esim.status == EsimStatus.NEW and installed:
        esim_status = "Installed"
    unlimited = esim.total_bytes is None
    return {
        "iccid": esim.iccid,
        "status": esim.status,
        "esim_status": esim_status,
        "smdp_status": (esim.profile_status or "unknown").upper(),
        "profile": PROFILE_WORDS.get((esim.profile_status or "").upper(), "Not Installed"),
        "unlimited": unlimited,
        "last_network": {
            "operator": network.get("operator"),
            "mcc": network.get("mcc"),
            "mnc": network.get("mnc"),
            "country": network.get("country"),
            "country_iso2": network.get("country_code"),
            "connection_type": network.get("connection_type"),
        },
        "device": {"model": esim.device_model, "imei": esim.device_imei},
        "activation_date": iso_z(esim.activated_at),
        "last_usage_date": iso_z(esim.last_usage_at),
        "expiry_date": iso_z(esim.expires_at),
        "data_usage": {
            "used_gb": _gb(esim.used_bytes),
            "total_gb": None if esim.total_bytes is None else _gb(esim.total_bytes),
            "unlimited": unlimited,
        },
    }
