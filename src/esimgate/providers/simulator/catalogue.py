"""The simulator's catalogue: a realistic wholesale price list built from reference data.

The structure (which packages exist, their codes and names) is fixed; the seed only moves prices,
so provider codes stay stable across seeds while two simulators can still disagree on cost.
Prices are a reference ladder (USD at price level 1.0, a mid-priced EU country) scaled by the
area's price level and a little seeded noise, rounded to 1/10000 USD like real upstream lists.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import fmean
from typing import Final

from esimgate.providers.base import E4, Coverage, Money, PackageKind, ProviderPackage
from esimgate.providers.simulator.networks import COUNTRIES_BY_CODE, Region, countries

GIB: Final = 1024**3

ASYNC_PROVISIONING_COUNTRIES: Final = frozenset({"JP"})
"""Countries whose orders the simulator provisions asynchronously (PENDING first, details later),
like KDDI-network packages at esimfly."""


@dataclass(frozen=True, slots=True)
class _Offer:
    gb: int | None  # None = unlimited
    days: int
    usd: float  # wholesale price at price level 1.0
    voice_minutes: int = 0
    sms: int = 0
    daily: bool = False  # gb is a per-day allowance


# Bigger packages are cheaper per GB; unlimited is far dearer per day than a data package.
_DATA: Final = (
    _Offer(1, 7, 0.95),
    _Offer(3, 15, 2.30),
    _Offer(5, 30, 3.45),
    _Offer(10, 30, 5.95),
)
_DATA_20GB: Final = (_Offer(20, 30, 10.10),)
_UNLIMITED: Final = (
    _Offer(None, 1, 1.65),
    _Offer(None, 3, 4.40),
    _Offer(None, 5, 6.90),
    _Offer(None, 7, 9.20),
    _Offer(None, 10, 12.60),
    _Offer(None, 15, 17.90),
    _Offer(None, 30, 32.50),
)
_REGIONAL_UNLIMITED: Final = tuple(o for o in _UNLIMITED if o.days in (7, 15, 30))
_VOICE: Final = (
    _Offer(3, 15, 3.35, voice_minutes=30, sms=20),
    _Offer(5, 30, 5.10, voice_minutes=60, sms=50),
    _Offer(10, 30, 8.25, voice_minutes=100, sms=100),
)
_DAY_PASSES: Final = (
    _Offer(1, 7, 3.90, daily=True),
    _Offer(1, 15, 7.60, daily=True),
)
# Top-ups cost a little more per GB than the base packages they extend.
_TOPUPS: Final = (
    _Offer(1, 7, 1.05),
    _Offer(3, 30, 2.65),
    _Offer(5, 30, 3.95),
)

# Wholesale price level per country, 1.0 = a mid-priced EU country. Follows real roaming costs:
# EU roam-like-at-home hubs and big South-East Asian markets are cheap; Switzerland, Japan,
# North America, the Gulf, islands and most of Africa are dear.
_PRICE_LEVEL: Final[Mapping[str, float]] = {
    # Europe
    "GB": 0.85, "FR": 0.80, "DE": 0.85, "IT": 0.80, "ES": 0.78, "PT": 0.82, "NL": 0.85,
    "BE": 0.88, "LU": 0.95, "CH": 1.65, "AT": 0.85, "IE": 0.88, "GR": 0.90, "CY": 0.95,
    "MT": 0.95, "TR": 0.68, "PL": 0.75, "CZ": 0.85, "SK": 0.88, "HU": 0.88, "SI": 0.90,
    "HR": 0.90, "RS": 1.10, "ME": 1.25, "MK": 1.15, "BG": 0.78, "RO": 0.72, "UA": 0.80,
    "SE": 0.85, "NO": 1.20, "DK": 0.88, "FI": 0.85, "IS": 1.45, "EE": 0.85, "LV": 0.85,
    "LT": 0.82,
    # Asia
    "JP": 1.45, "KR": 1.30, "CN": 1.20, "HK": 0.90, "MO": 1.05, "TW": 0.88, "SG": 0.90,
    "MY": 0.72, "TH": 0.62, "VN": 0.60, "KH": 0.95, "ID": 0.70, "PH": 0.85, "IN": 0.65,
    "LK": 1.05, "NP": 1.35, "BD": 1.10, "PK": 1.05, "MV": 1.70, "MN": 1.60, "KZ": 1.10,
    "UZ": 1.20, "GE": 0.95, "AM": 1.05, "AZ": 1.25,
    # Middle East
    "AE": 1.35, "SA": 1.30, "QA": 1.45, "KW": 1.40, "BH": 1.40, "OM": 1.50, "IQ": 1.90,
    "JO": 1.25, "IL": 1.15, "LB": 1.80,
    # Africa
    "EG": 1.10, "MA": 1.05, "TN": 1.30, "DZ": 1.60, "ZA": 1.40, "KE": 1.55, "TZ": 1.75,
    "UG": 1.85, "RW": 2.00, "NG": 1.70, "GH": 1.80, "SN": 1.90, "CI": 1.95, "MU": 1.85,
    # Americas
    "US": 1.40, "CA": 1.60, "MX": 1.05, "GT": 1.45, "CR": 1.40, "DO": 1.35, "CO": 1.10,
    "EC": 1.50, "PE": 1.20, "BR": 1.15, "AR": 1.25, "CL": 1.20, "UY": 1.45,
    # Oceania
    "AU": 1.25, "NZ": 1.30, "FJ": 2.20,
}  # fmt: skip

# Main travel destinations get the full range (20 GB and unlimited); the rest stop at 10 GB.
_MAJOR: Final = frozenset({
    "GB", "FR", "DE", "IT", "ES", "PT", "NL", "CH", "AT", "GR", "TR",
    "JP", "KR", "CN", "HK", "TW", "SG", "MY", "TH", "VN", "ID", "PH", "IN",
    "AE", "SA", "IL", "EG", "MA", "ZA",
    "US", "CA", "MX", "BR", "AU", "NZ",
})  # fmt: skip
_VOICE_COUNTRIES: Final = frozenset({"US", "CA", "GB", "FR", "DE", "IT", "ES", "TR", "TH", "AU"})
_DAY_PASS_COUNTRIES: Final = frozenset({"JP", "KR", "CN", "TH", "VN"})
# Areas whose 30-day 10/20 GB packages can renew automatically.
_RENEWABLE_AREAS: Final = frozenset({"US", "GB", "JP", "EU", "GLOBAL"})

# Regional packages: code used in provider codes, display name, member countries. Codes are never
# a country's ISO code ("EU" is reserved by ISO 3166 and assigned to no country).
_REGIONS: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    *(
        (code, region.value, tuple(c.code for c in countries(region)))
        for code, region in (
            ("EU", Region.EUROPE),
            ("ASIA", Region.ASIA),
            ("AMERICAS", Region.AMERICAS),
            ("MIDEAST", Region.MIDDLE_EAST),
            ("AFRICA", Region.AFRICA),
            ("OCEANIA", Region.OCEANIA),
        )
    ),
    ("GULF", "Gulf", ("AE", "SA", "QA", "KW", "BH", "OM")),
    ("NORAM", "North America", ("US", "CA", "MX")),
)
_REGIONS_WITH_UNLIMITED: Final = frozenset({"EU", "ASIA"})
# Thin or costly roaming agreements keep these out of the global packages, as at real upstreams.
_NOT_GLOBAL: Final = frozenset({"IQ", "LB", "MN", "MV", "RW", "SN", "CI", "UG", "GT", "FJ"})

# Multi-country packages cost more than the average of their members' local prices.
_REGIONAL_PREMIUM: Final = 1.3
_GLOBAL_PREMIUM: Final = 2.2


@dataclass(frozen=True, slots=True)
class _Area:
    code: str  # the area's part of provider codes: "JP", "EU", "GLOBAL"
    name: str
    kind: PackageKind
    coverage: tuple[Coverage, ...]
    price_level: float
    offers: tuple[_Offer, ...]


def _country_area(code: str) -> _Area:
    country = COUNTRIES_BY_CODE[code]
    offers: tuple[_Offer, ...] = _DATA
    if code in _MAJOR:
        offers += _DATA_20GB + _UNLIMITED
    if code in _VOICE_COUNTRIES:
        offers += _VOICE
    if code in _DAY_PASS_COUNTRIES:
        offers += _DAY_PASSES
    return _Area(
        code, country.name, PackageKind.LOCAL, (country.coverage(),), _PRICE_LEVEL[code], offers
    )


def _multi_area(code: str, name: str, kind: PackageKind, members: tuple[str, ...]) -> _Area:
    premium = _GLOBAL_PREMIUM if kind is PackageKind.GLOBAL else _REGIONAL_PREMIUM
    offers: tuple[_Offer, ...] = _DATA + _DATA_20GB
    if code in _REGIONS_WITH_UNLIMITED:
        offers += _REGIONAL_UNLIMITED
    return _Area(
        code,
        name,
        kind,
        tuple(COUNTRIES_BY_CODE[c].coverage() for c in members),
        premium * fmean(_PRICE_LEVEL[c] for c in members),
        offers,
    )


def _areas() -> tuple[_Area, ...]:
    local = tuple(_country_area(code) for code in COUNTRIES_BY_CODE)
    regional = tuple(
        _multi_area(code, name, PackageKind.REGIONAL, members) for code, name, members in _REGIONS
    )
    worldwide = tuple(code for code in COUNTRIES_BY_CODE if code not in _NOT_GLOBAL)
    return (*local, *regional, _multi_area("GLOBAL", "Global", PackageKind.GLOBAL, worldwide))


def _labels(offer: _Offer) -> tuple[str, str]:
    """The offer's part of a provider code and of a display name: ("5GB-30D", "5GB 30 Days")."""
    days = "1 Day" if offer.days == 1 else f"{offer.days} Days"
    if offer.gb is None:
        size_code, size_name = "UNL", "Unlimited"
    elif offer.daily:
        size_code, size_name = f"{offer.gb}GBDAY", f"{offer.gb}GB/day"
    else:
        size_code, size_name = f"{offer.gb}GB", f"{offer.gb}GB"
    code, name = f"{size_code}-{offer.days}D", f"{size_name} {days}"
    if offer.voice_minutes:
        code += f"-V{offer.voice_minutes}"
        name += f" + {offer.voice_minutes} Min + {offer.sms} SMS"
    return code, name


def _data_bytes(offer: _Offer) -> int | None:
    return None if offer.gb is None else offer.gb * GIB


def _cost(offer: _Offer, level: float) -> Money:
    return Money(amount_e4=round(offer.usd * level * E4), currency="USD")


def _base_package(area: _Area, offer: _Offer, level: float) -> ProviderPackage:
    code, name = _labels(offer)
    # 1 GB starters, unlimited plans and day passes take no top-ups, as at most upstreams.
    rechargeable = offer.gb is not None and offer.gb > 1 and not offer.daily
    return ProviderPackage(
        provider_code=f"SIM-{area.code}-{code}",
        name=f"{area.name} {name}",
        kind=area.kind,
        region=area.name,
        coverage=area.coverage,
        data_bytes=_data_bytes(offer),
        validity_days=offer.days,
        cost=_cost(offer, level),
        voice_minutes=offer.voice_minutes,
        sms_count=offer.sms,
        rechargeable=rechargeable,
        daily_data=offer.daily,
        renewable=(
            area.code in _RENEWABLE_AREAS
            and offer.days == 30
            and offer.gb in (10, 20)
            and not offer.voice_minutes
        ),
    )


def _topup(area: _Area, offer: _Offer, level: float, targets: frozenset[str]) -> ProviderPackage:
    code, name = _labels(offer)
    return ProviderPackage(
        provider_code=f"SIM-TOPUP-{area.code}-{code}",
        name=f"{area.name} Top-up {name}",
        kind=area.kind,
        region=area.name,
        coverage=area.coverage,
        data_bytes=_data_bytes(offer),
        validity_days=offer.days,
        cost=_cost(offer, level),
        is_topup=True,
        topup_for=targets,
    )


def build_catalogue(seed: int = 2026) -> tuple[ProviderPackage, ...]:
    """The simulator's full catalogue, base packages and top-ups; identical for identical seeds."""
    rng = random.Random(seed)  # noqa: S311  # price noise for a simulator, not security
    packages: list[ProviderPackage] = []
    for area in _areas():
        # Noise per area moves a whole price list; the small noise per package never breaks the
        # ladder's order (bigger costs more, and less per GB).
        level = area.price_level * rng.uniform(0.92, 1.08)
        base = [_base_package(area, o, level * rng.uniform(0.98, 1.02)) for o in area.offers]
        packages += base
        # An empty topup_for would mean "any package", so an area without rechargeable packages
        # gets no top-ups at all.
        targets = frozenset(p.provider_code for p in base if p.rechargeable)
        if targets:
            packages += (_topup(area, o, level * rng.uniform(0.98, 1.02), targets) for o in _TOPUPS)
    return tuple(packages)
