"""What makes two upstream packages the same product, and the code we sell it under."""

from __future__ import annotations

import hashlib

from esimgate.providers.base import ProviderPackage

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def identity_key(package: ProviderPackage) -> str:
    """A digest of coverage, data, validity and extras; no provider in it."""
    parts = [
        "topup" if package.is_topup else "base",
        package.kind.value,
        ",".join(sorted(c.country_code for c in package.coverage)),
        "unlimited" if package.data_bytes is None else str(package.data_bytes),
        "daily" if package.daily_data else "total",
        str(package.validity_days),
        str(package.voice_minutes),
        str(package.sms_count),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def package_code(identity: str, *, is_topup: bool) -> str:
    """Nine letters drawn from the identity (like the seeds' "PHAJHEAYP"); top-ups are
    prefixed ``TOPUP_`` as the seeds show. Stable across syncs and upstreams."""
    number = int(identity, 16)
    letters = []
    for _ in range(9):
        number, index = divmod(number, len(_LETTERS))
        letters.append(_LETTERS[index])
    code = "".join(letters)
    return f"TOPUP_{code}" if is_topup else code
