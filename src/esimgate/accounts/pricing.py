"""Per-account prices: upstream cost plus the account's markup, rounded to the minor unit."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from esimgate.money import MoneyError, exponent


def round_half_up_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, exactly, for non-negative numerators."""
    quotient, remainder = divmod(numerator, denominator)
    return quotient + (1 if 2 * remainder >= denominator else 0)


def price_minor(
    cost_e4: int, currency: str, markup_percent_bp: int, markup_fixed_minor: int
) -> int:
    """Selling price in minor units: cost × (1 + percent) rounded half up, plus the fixed markup."""
    # cost_e4 × (10000 + bp) is in 1/10^8 units; the minor unit is 1/10^exp.
    scaled = cost_e4 * (10_000 + markup_percent_bp)
    return round_half_up_div(scaled, 10 ** (8 - exponent(currency))) + markup_fixed_minor


def parse_percent_bp(text: str) -> int:
    """'12.5' → 1250 basis points; at most two decimals, never negative."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise MoneyError(f"not a percentage: {text!r}") from None
    if not value.is_finite() or value < 0 or value > 10_000:
        raise MoneyError(f"markup percent must be between 0 and 10000, got {text}")
    bp = value * 100
    if bp != bp.to_integral_value():
        raise MoneyError("markup percent allows at most two decimals")
    return int(bp)
