"""Per-account prices and money parsing: exact integer arithmetic, half-up rounding, no floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from esimgate.accounts.pricing import parse_percent_bp, price_minor, round_half_up_div
from esimgate.money import MINOR_UNITS, MoneyError, e4_to_minor, minor_to_decimal, parse_minor

CURRENCIES = sorted(MINOR_UNITS)


def reference_price(cost_e4: int, currency: str, percent_bp: int, fixed_minor: int) -> int:
    """The price computed the obvious way with decimals: cost × (1 + percent), rounded half up
    to the currency's minor unit, then the fixed markup."""
    with localcontext() as ctx:
        ctx.prec = 80
        exp = MINOR_UNITS[currency]
        cost = Decimal(cost_e4) / Decimal(10_000)
        marked_up = cost * (Decimal(1) + Decimal(percent_bp) / Decimal(10_000))
        rounded = marked_up.quantize(Decimal(1).scaleb(-exp), rounding=ROUND_HALF_UP)
        return int(rounded.scaleb(exp)) + fixed_minor


# --- price_minor: worked examples ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost_e4", "currency", "percent_bp", "fixed_minor", "expected"),
    [
        # 0 % markup: just the cost rounded to cents, half up
        (12_345, "USD", 0, 0, 123),  # 1.2345 → 1.23
        (12_349, "USD", 0, 0, 123),  # 1.2349 → 1.23
        (12_350, "USD", 0, 0, 124),  # 1.2350 → 1.24
        (12_250, "USD", 0, 0, 123),  # 1.2250 → 1.23 (half up, not half even: 1.22)
        (50, "USD", 0, 0, 1),  # 0.0050 → 0.01
        (49, "USD", 0, 0, 0),  # 0.0049 → 0.00
        (0, "USD", 0, 0, 0),
        (10_000, "USD", 0, 0, 100),
        # percent markup, rounded once after multiplying
        (10_000, "USD", 1_250, 0, 113),  # 1.00 × 1.125 = 1.125 → 1.13
        (12_345, "USD", 1_250, 0, 139),  # 1.2345 × 1.125 = 1.38881… → 1.39
        (95_000, "USD", 1_000, 0, 1_045),  # 9.50 × 1.1 = 10.45
        (34_500, "EUR", 1, 0, 345),  # 3.45 × 1.0001 = 3.450345 → 3.45
        # the fixed markup is added after the percent and is never marked up itself
        (12_345, "USD", 0, 50, 173),  # 1.23 + 0.50
        (10_000, "USD", 1_000, 50, 160),  # 1.10 + 0.50, not (1.00 + 0.50) × 1.1 = 1.65
        (10_000, "USD", 1_250, 50, 163),  # 1.13 + 0.50
        (0, "USD", 5_000, 25, 25),
        # currencies without a minor unit round to whole units
        (1_234_500, "JPY", 0, 0, 123),  # ¥123.45 → ¥123
        (1_235_000, "JPY", 0, 0, 124),  # ¥123.50 → ¥124
        (1_234_999, "JPY", 0, 0, 123),
        (1_000_000, "JPY", 1_250, 0, 113),  # ¥100 × 1.125 = 112.5 → 113
        (1_000_000, "JPY", 1_250, 10, 123),
        (15_005_000, "IQD", 0, 0, 1_501),  # 1500.5 IQD → 1501
        (15_004_999, "IQD", 0, 0, 1_500),
        (15_000_000, "IQD", 1_000, 250, 1_900),  # 1650 + 250
        (100_000_000, "KRW", 1, 0, 10_001),  # ₩10000 × 1.0001
    ],
)
def test_price_examples(
    cost_e4: int, currency: str, percent_bp: int, fixed_minor: int, expected: int
) -> None:
    result = price_minor(cost_e4, currency, percent_bp, fixed_minor)
    assert result == expected
    assert type(result) is int
    assert reference_price(cost_e4, currency, percent_bp, fixed_minor) == expected


def test_price_refuses_unknown_currency() -> None:
    with pytest.raises(MoneyError, match="unsupported currency 'XXX'"):
        price_minor(10_000, "XXX", 0, 0)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(0, 7, 0), (7, 7, 1), (3, 7, 0), (4, 7, 1), (5, 10, 1), (4, 10, 0), (15, 10, 2), (25, 10, 3)],
)
def test_round_half_up_div(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_up_div(numerator, denominator) == expected


# --- price_minor: properties --------------------------------------------------------------------

costs = st.integers(min_value=0, max_value=10**13)  # up to a billion units
percents = st.integers(min_value=0, max_value=1_000_000)  # 0 … 10000 %
fixeds = st.integers(min_value=0, max_value=10**8)
currencies = st.sampled_from(CURRENCIES)


@given(cost_e4=costs, currency=currencies, percent_bp=percents, fixed_minor=fixeds)
@example(cost_e4=12_250, currency="USD", percent_bp=0, fixed_minor=0)
@example(cost_e4=1_235_000, currency="JPY", percent_bp=0, fixed_minor=0)
@example(cost_e4=10**13, currency="IQD", percent_bp=1_000_000, fixed_minor=10**8)
def test_price_matches_decimal_reference(
    cost_e4: int, currency: str, percent_bp: int, fixed_minor: int
) -> None:
    assert price_minor(cost_e4, currency, percent_bp, fixed_minor) == reference_price(
        cost_e4, currency, percent_bp, fixed_minor
    )


@given(cost_e4=costs, currency=currencies, percent_bp=percents, fixed_minor=fixeds)
def test_price_never_below_cost_and_monotonic(
    cost_e4: int, currency: str, percent_bp: int, fixed_minor: int
) -> None:
    price = price_minor(cost_e4, currency, percent_bp, fixed_minor)
    assert price >= e4_to_minor(cost_e4, currency) + fixed_minor
    assert price_minor(cost_e4 + 1, currency, percent_bp, fixed_minor) >= price
    assert price_minor(cost_e4, currency, percent_bp + 1, fixed_minor) >= price
    assert price_minor(cost_e4, currency, percent_bp, fixed_minor + 1) == price + 1


@given(cost_e4=costs, currency=currencies)
def test_zero_markup_is_the_cost_rounded_half_up(cost_e4: int, currency: str) -> None:
    assert price_minor(cost_e4, currency, 0, 0) == e4_to_minor(cost_e4, currency)


# --- parse_percent_bp ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("12.5", 1_250),
        ("12.50", 1_250),
        (" 7 ", 700),
        ("0.01", 1),
        ("100", 10_000),
        ("10000", 1_000_000),
        ("33.33", 3_333),
    ],
)
def test_parse_percent_bp(text: str, expected: int) -> None:
    assert parse_percent_bp(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "between 0 and 10000"),
        ("10000.01", "between 0 and 10000"),
        ("12.345", "at most two decimals"),
        ("0.001", "at most two decimals"),
        ("abc", "not a percentage"),
        ("", "not a percentage"),
        ("12,5", "not a percentage"),
        ("12.5%", "not a percentage"),
        ("NaN", "between 0 and 10000"),
        ("Infinity", "between 0 and 10000"),
        ("-Infinity", "between 0 and 10000"),
    ],
)
def test_parse_percent_bp_rejects(text: str, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        parse_percent_bp(text)


@given(st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False))
def test_parse_percent_bp_round_trips_two_decimals(value: Decimal) -> None:
    assert parse_percent_bp(str(value)) == int(value * 100)


# --- parse_minor --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("12", "USD", 1_200),
        ("12.5", "USD", 1_250),
        ("12.50", "USD", 1_250),
        (" 25.50 ", "USD", 2_550),
        ("0.01", "USD", 1),
        ("0", "USD", 0),
        (Decimal("1.23"), "USD", 123),
        (5, "USD", 500),
        ("1500", "JPY", 1_500),
        ("1500", "IQD", 1_500),
        ("-5", "USD", -500),  # the sign is the caller's business (a credit refuses it)
    ],
)
def test_parse_minor_accepts(text: str | int | Decimal, currency: str, expected: int) -> None:
    result = parse_minor(text, currency)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "currency", "message"),
    [
        (12.5, "USD", "never binary floats"),
        (0.0, "USD", "never binary floats"),
        (float("nan"), "USD", "never binary floats"),
        (float("inf"), "USD", "never binary floats"),
        ("NaN", "USD", "not an amount"),
        ("nan", "USD", "not an amount"),
        ("sNaN", "USD", "not an amount"),
        ("Infinity", "USD", "not an amount"),
        ("-Infinity", "USD", "not an amount"),
        ("inf", "USD", "not an amount"),
        ("12.345", "USD", "more decimals than USD allows"),
        ("1.001", "USD", "more decimals than USD allows"),
        ("1500.5", "JPY", "more decimals than JPY allows"),
        ("0.1", "IQD", "more decimals than IQD allows"),
        ("abc", "USD", "not an amount"),
        ("", "USD", "not an amount"),
        ("12,50", "USD", "not an amount"),
        ("12.5.0", "USD", "not an amount"),
        ("$12", "USD", "not an amount"),
        ("12 USD", "USD", "not an amount"),
        ("12", "XXX", "unsupported currency"),
    ],
)
def test_parse_minor_rejects(value: object, currency: str, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        parse_minor(value, currency)  # type: ignore[arg-type]


@given(st.floats(allow_nan=True, allow_infinity=True), currencies)
def test_parse_minor_refuses_every_float(value: float, currency: str) -> None:
    with pytest.raises(MoneyError, match="never binary floats"):
        parse_minor(value, currency)


@given(currency=currencies, data=st.data())
def test_parse_minor_round_trips(currency: str, data: st.DataObject) -> None:
    exp = MINOR_UNITS[currency]
    value = data.draw(st.decimals(min_value=-(10**9), max_value=10**9, places=exp, allow_nan=False))
    minor = parse_minor(str(value), currency)
    assert minor == int(value.scaleb(exp))
    assert minor_to_decimal(minor, currency) == value


@given(currency=currencies, data=st.data())
def test_parse_minor_refuses_extra_decimals(currency: str, data: st.DataObject) -> None:
    exp = MINOR_UNITS[currency]
    whole = data.draw(st.integers(min_value=0, max_value=10**9))
    extra = data.draw(st.integers(min_value=1, max_value=9))
    text = f"{whole}.{'0' * exp}{extra}"  # one significant digit beyond the minor unit
    with pytest.raises(MoneyError, match=f"more decimals than {currency} allows"):
        parse_minor(text, currency)
