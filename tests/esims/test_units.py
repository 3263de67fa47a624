"""Exact byte arithmetic with binary units (spec section 7.1)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esimgate.esims.units import (
    GIB,
    KIB,
    MIB,
    bytes_from_gb,
    bytes_from_kb,
    bytes_from_mb,
    daily_total,
    gb,
    mb,
    parse_volume,
    remaining_bytes,
    usage_percentage,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6GB", 6 * GIB),
        ("500MB", 500 * MIB),
        ("1.5 GB", 3 * GIB // 2),
        ("1 GB", GIB),
        ("10240KB", 10 * MIB),
        ("0.5GB", GIB // 2),
        ("unlimited", None),
        ("Unlimited", None),
        ("  UNLIMITED ", None),
        ("6gb", 6 * GIB),
        (" 2 Gb ", 2 * GIB),
        ("06GB", 6 * GIB),  # SimplifyTrip zero-pads in SKUs
        ("1GiB", GIB),
        ("512 MiB", GIB // 2),
        ("2048 B", 2 * KIB),
        ("1TB", 1024 * GIB),
        ("0GB", 0),
        (".5GB", GIB // 2),
        ("1.GB", GIB),
        ("0.001 MB", 1049),  # 1048.576 bytes, rounded to the nearest byte
    ],
)
def test_parse_volume(text: str, expected: int | None) -> None:
    assert parse_volume(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "GB",
        "1.5",
        "abc",
        "1..5GB",
        "-1GB",
        "+1GB",
        "1,5GB",
        "1 000 MB",
        "1 XB",
        "1e3GB",
        "NaN GB",
        "inf GB",
        "١GB",  # Arabic-Indic digit: Decimal would accept it, we don't
        "6GB/day",
        "unlimited!",
        "1 G B",
    ],
)
def test_parse_volume_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a data volume"):
        parse_volume(text)


@given(st.text())
def test_parse_volume_only_ever_raises_value_error(text: str) -> None:
    try:
        result = parse_volume(text)
    except ValueError as error:
        assert repr(text) in str(error)  # the message names the bad text
    else:
        assert result is None or result >= 0


@given(st.integers(min_value=0, max_value=10**30))
def test_whole_units_are_exact(n: int) -> None:
    assert bytes_from_mb(n) == n * 2**20
    assert bytes_from_gb(n) == n * 2**30
    assert bytes_from_kb(n) == n * 2**10
    assert bytes_from_mb(str(n)) == bytes_from_mb(Decimal(n)) == n * 2**20
    assert parse_volume(f"{n}GB") == n * 2**30
    assert parse_volume(f"{n} mb") == n * 2**20


@given(st.integers(min_value=0, max_value=10**30))
def test_display_round_trips_whole_values(n: int) -> None:
    assert mb(bytes_from_mb(n)) == n and isinstance(mb(bytes_from_mb(n)), int)
    assert gb(bytes_from_gb(n)) == n and isinstance(gb(bytes_from_gb(n)), int)


@given(st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False))
def test_fractional_amounts_round_to_the_nearest_byte(amount: Decimal) -> None:
    exact = Fraction(amount) * GIB
    result = parse_volume(f"{amount:f} GB")
    assert result is not None
    assert abs(result - exact) <= Fraction(1, 2)
    assert result == bytes_from_gb(amount) == bytes_from_gb(f"{amount:f}")


@pytest.mark.parametrize(
    ("num_bytes", "as_mb", "as_gb"),
    [
        (0, 0, 0),
        (MIB, 1, 0.001),
        (3 * MIB // 2, 1.5, 0.001),
        (GIB, 1024, 1),
        (3 * GIB // 2, 1536, 1.5),
        (256 * MIB, 256, 0.25),
        (123_456_789, 117.74, 0.115),
        (1, 0, 0),  # rounds to zero: shown as a whole 0
    ],
)
def test_display_helpers(num_bytes: int, as_mb: float, as_gb: float) -> None:
    assert mb(num_bytes) == as_mb
    assert gb(num_bytes) == as_gb
    assert type(mb(num_bytes)) is type(as_mb)


def test_floats_and_junk_are_refused() -> None:
    with pytest.raises(TypeError):
        bytes_from_mb(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        bytes_from_gb(True)
    with pytest.raises(ValueError, match="negative"):
        bytes_from_mb(-1)
    with pytest.raises(ValueError, match="not a number"):
        bytes_from_gb("lots")
    with pytest.raises(ValueError, match="finite"):
        bytes_from_gb("Infinity")
    with pytest.raises(TypeError):
        parse_volume(6)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("per_day", "days", "expected"),
    [(GIB, 7, 7 * GIB), (500 * MIB, 30, 15000 * MIB), (GIB, 0, 0), (0, 5, 0)],
)
def test_daily_total(per_day: int, days: int, expected: int) -> None:
    assert daily_total(per_day, days) == expected


@given(st.integers(min_value=0, max_value=2**50), st.integers(min_value=0, max_value=3650))
def test_daily_total_is_exact(per_day: int, days: int) -> None:
    assert daily_total(per_day, days) == per_day * days


def test_daily_total_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="days"):
        daily_total(GIB, -1)
    with pytest.raises(ValueError, match="per_day_bytes"):
        daily_total(-GIB, 1)
    with pytest.raises(TypeError):
        daily_total(GIB, 1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("used", "total", "remaining", "percentage"),
    [
        (256 * MIB, GIB, 768 * MIB, 25),  # the seed-004 example
        (0, GIB, GIB, 0),
        (GIB, GIB, 0, 100),
        (2 * GIB, GIB, 0, 100),  # overuse never shows above 100 or below 0 left
        (GIB // 3, GIB, GIB - GIB // 3, 33.33),
        (5 * GIB, None, None, 0),  # unlimited
        (-5, GIB, GIB, 0),  # a negative counter is noise, not credit
    ],
)
def test_remaining_and_percentage(
    used: int, total: int | None, remaining: int | None, percentage: float
) -> None:
    assert remaining_bytes(used, total) == remaining
    assert usage_percentage(used, total) == percentage
