"""Data volumes as exact integer bytes (spec section 7.1).

Units are binary throughout, as the API shows them: 1 KB = 1024 bytes, 1 MB = 1024 KB,
1 GB = 1024 MB. Upstream amounts arrive as ints, decimal strings or :class:`~decimal.Decimal`;
arithmetic stays in integers (via exact fractions), never binary floats. Only the display helpers
:func:`mb`, :func:`gb` and :func:`usage_percentage` return a float, and only for a non-whole
result, after rounding.

``None`` means unlimited wherever a volume may be absent.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

Amount = int | Decimal | str

# Upstreams write "GB" and mean GiB (spec 7.1), so both spellings are the binary unit.
_UNITS: dict[str, int] = {
    "b": 1,
    **dict.fromkeys(("kb", "kib"), KIB),
    **dict.fromkeys(("mb", "mib"), MIB),
    **dict.fromkeys(("gb", "gib"), GIB),
    **dict.fromkeys(("tb", "tib"), TIB),
}
# ASCII digits only: Python's \d (and Decimal) would also accept other scripts' digits.
_VOLUME = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)", re.ASCII | re.IGNORECASE)
_UNLIMITED = "unlimited"


def _amount(value: Amount) -> Decimal:
    """A finite, non-negative exact amount; floats are refused, not rounded."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise TypeError(f"volume amounts must be int, Decimal or str, not {type(value).__name__}")
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    if amount < 0:
        raise ValueError(f"a volume cannot be negative: {value!r}")
    return amount


def _round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator to the nearest integer, halves away from zero (denominator > 0)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def _to_bytes(amount: Decimal, unit: int) -> int:
    # as_integer_ratio is exact; Decimal multiplication would round at the context's 28 digits.
    numerator, denominator = amount.as_integer_ratio()
    return _round_half_up(numerator * unit, denominator)


def bytes_from_kb(value: Amount) -> int:
    return _to_bytes(_amount(value), KIB)


def bytes_from_mb(value: Amount) -> int:
    """Binary megabytes to bytes, rounded to the nearest byte: ``"1.5"`` → 1572864."""
    return _to_bytes(_amount(value), MIB)


def bytes_from_gb(value: Amount) -> int:
    """Binary gigabytes to bytes, rounded to the nearest byte: ``"0.5"`` → 536870912."""
    return _to_bytes(_amount(value), GIB)


def parse_volume(text: str) -> int | None:
    """A volume as upstreams write it ("6GB", "1.5 GB", "10240KB", "Unlimited") in bytes.

    Case and spaces do not matter; "unlimited" gives ``None``. Anything else is a ``ValueError``
    naming the text, so a catalogue sync can report the one bad package and carry on.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_volume expects text, not {type(text).__name__}")
    cleaned = text.strip()
    if cleaned.casefold() == _UNLIMITED:
        return None
    match = _VOLUME.fullmatch(cleaned)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"not a data volume: {text!r} (expected a number and a unit B/KB/MB/GB/TB, "
            "e.g. '1.5 GB', or 'unlimited')"
        )
    return _to_bytes(Decimal(match.group(1)), unit)


def _display(num_bytes: int, unit: int, places: int) -> int | float:
    """num_bytes / unit rounded half-up to ``places``; an int when the result is whole."""
    scale: int = 10**places  # int ** int is typed Any (negative exponents give floats)
    scaled = _round_half_up(num_bytes * scale, unit)
    if scaled % scale == 0:
        return scaled // scale
    return float(Decimal(scaled).scaleb(-places))  # the one float: for JSON display only


def mb(num_bytes: int) -> int | float:
    """Bytes as binary MB for display: whole → int, else rounded to 2 decimals."""
    return _display(num_bytes, MIB, 2)


def gb(num_bytes: int) -> int | float:
    """Bytes as binary GB for display: whole → int, else rounded to 3 decimals."""
    return _display(num_bytes, GIB, 3)


def daily_total(per_day_bytes: int, days: int) -> int:
    """The whole allowance of a daily plan (day pass): the per-day cap times the validity."""
    for name, value in (("per_day_bytes", per_day_bytes), ("days", days)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} cannot be negative: {value}")
    return per_day_bytes * days


def remaining_bytes(used_bytes: int, total_bytes: int | None) -> int | None:
    """What is left, never negative even when an upstream reports overuse; None if unlimited."""
    if total_bytes is None:
        return None
    return max(total_bytes - max(used_bytes, 0), 0)


def usage_percentage(used_bytes: int, total_bytes: int | None) -> int | float:
    """Share of the allowance used, 0–100 with 2 decimals (spec 7.1): unlimited (or a zero or
    negative total) shows 0, and overuse is capped at 100."""
    if total_bytes is None or total_bytes <= 0:
        return 0
    used = min(max(used_bytes, 0), total_bytes)
    return _display(used * 100, total_bytes, 2)
