"""eSIM fields shared by every response that shows one."""

from __future__ import annotations

from esimgate.esims.install import android_install_url, apple_install_url
from esimgate.esims.models import Esim


def install_links(esim: Esim) -> dict[str, str]:
    return {
        "lpaString": esim.lpa,
        "directAppleInstallUrl": apple_install_url(esim.lpa),
        "directAndroidInstallUrl": android_install_url(esim.lpa),
    }


def qr_url(base_url: str, esim: Esim) -> str:
    """The eSIM's QR image, served by esimgate at a stable, unguessable URL."""
    return f"{base_url.rstrip('/')}/qr/{esim.qr_token}.png"
