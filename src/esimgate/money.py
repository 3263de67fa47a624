"""Money without floats: integer minor units, currencies' exponents, parsing and rendering."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from esimgate.providers.base import E4

# ISO 4217 minor-unit exponents of the currencies an account may hold.
MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "SGD": 2,
    "AED": 2,
    "TRY": 2,
    "INR": 2,
    "JPY": 0,
    "KRW": 0,
    "IQD": 0,  # esimfly prices Iraqi accounts in whole dinars
}


class MoneyError(ValueError):
    """An amount that is not a valid amount of that currency."""


def exponent(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise MoneyError(f"unsupported currency {currency!r}") from None


def parse_minor(text: str | int | Decimal, currency: str) -> int:
    """'12.34' → 1234 for USD; refuses floats, extra decimals, NaN and infinities."""
    if isinstance(text, float):
        raise MoneyError("amounts are never binary floats")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise MoneyError(f"not an amount: {text!r}") from None
    if not value.is_finite():
        raise MoneyError(f"not an amount: {text!r}")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{text} has more decimals than {currency} allows")
    return int(scaled)


def e4_to_minor(amount_e4: int, currency: str) -> int:
    """Round a 1/10000 amount to the currency's minor unit, half up (away from zero)."""
    factor = 10 ** (4 - exponent(currency))
    return int((Decimal(amount_e4) / factor).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def minor_to_decimal(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor).scaleb(-exponent(currency))


def e4_to_decimal(amount_e4: int) -> Decimal:
    return Decimal(amount_e4) / E4


def render(amount_minor: int, currency: str) -> float:
    """The JSON number for an amount. The only float in the system, made at the very edge
    from an exact decimal string, so it prints with exactly the currency's decimals."""
    return float(minor_to_decimal(amount_minor, currency))
