"""The simulator's catalogue: realistic, internally consistent and deterministic."""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import pairwise

import pytest

from esimgate.providers.base import PackageKind, ProviderPackage
from esimgate.providers.simulator.catalogue import (
    ASYNC_PROVISIONING_COUNTRIES,
    GIB,
    build_catalogue,
)
from esimgate.providers.simulator.networks import COUNTRIES, COUNTRIES_BY_CODE, Region, countries


@pytest.fixture(scope="module")
def catalogue() -> tuple[ProviderPackage, ...]:
    return build_catalogue()


@pytest.fixture(scope="module")
def base(catalogue: tuple[ProviderPackage, ...]) -> list[ProviderPackage]:
    return [p for p in catalogue if not p.is_topup]


@pytest.fixture(scope="module")
def topups(catalogue: tuple[ProviderPackage, ...]) -> list[ProviderPackage]:
    return [p for p in catalogue if p.is_topup]


def _data_only(packages: list[ProviderPackage]) -> list[ProviderPackage]:
    return [
        p for p in packages if p.data_bytes is not None and not p.daily_data and not p.voice_minutes
    ]


# --- reference data -----------------------------------------------------------------------------


def test_enough_countries_with_well_formed_unique_codes() -> None:
    assert len(COUNTRIES) >= 65
    codes = [c.code for c in COUNTRIES]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"[A-Z]{2}", code) for code in codes)
    names = [c.name for c in COUNTRIES]
    assert len(set(names)) == len(names)


def test_every_country_has_one_to_three_well_formed_networks() -> None:
    for country in COUNTRIES:
        assert 1 <= len(country.networks) <= 3, country.code
        for net in country.networks:
            assert re.fullmatch(r"\d{3}", net.mcc), (country.code, net)
            assert re.fullmatch(r"\d{2,3}", net.mnc), (country.code, net)
            assert net.radio in (("4G",), ("4G", "5G")), (country.code, net)
        plmns = [(n.mcc, n.mnc) for n in country.networks]
        assert len(set(plmns)) == len(plmns), country.code


def test_a_countrys_operators_share_its_mcc() -> None:
    # Only the United States spans several MCCs among the operators listed (310 and 311).
    for country in COUNTRIES:
        mccs = {n.mcc for n in country.networks}
        assert len(mccs) == 1 or country.code == "US", (country.code, mccs)


def test_mccs_belong_to_one_country() -> None:
    owner: dict[str, str] = {}
    for country in COUNTRIES:
        for net in country.networks:
            assert owner.setdefault(net.mcc, country.code) == country.code, net


def test_major_travel_destinations_are_present() -> None:
    expected = {
        "US", "CA", "MX", "BR", "AR", "CL", "CO", "PE",
        "GB", "FR", "DE", "IT", "ES", "PT", "NL", "BE", "CH", "AT", "IE", "GR", "TR", "PL", "CZ",
        "HU", "SE", "NO", "DK", "FI", "IS", "HR", "RO", "UA",
        "JP", "KR", "CN", "HK", "TW", "SG", "MY", "TH", "VN", "ID", "PH", "IN", "LK", "NP",
        "GE", "AM", "KZ",
        "AE", "SA", "QA", "IL", "JO", "IQ", "OM", "KW", "BH",
        "EG", "MA", "ZA", "KE", "TZ", "NG",
        "AU", "NZ", "FJ",
    }  # fmt: skip
    assert expected <= COUNTRIES_BY_CODE.keys()


def test_every_region_has_countries() -> None:
    for region in Region:
        assert countries(region), region
    assert sum(len(countries(r)) for r in Region) == len(countries())


@pytest.mark.parametrize(
    ("country", "operator", "mcc", "mnc"),
    [
        ("JP", "NTT Docomo", "440", "10"),
        ("JP", "SoftBank", "440", "20"),
        ("JP", "KDDI au", "440", "50"),
        ("GB", "EE", "234", "30"),
        ("GB", "Vodafone", "234", "15"),
        ("US", "T-Mobile", "310", "260"),
        ("US", "AT&T", "310", "410"),
        ("FR", "Orange", "208", "01"),
        ("DE", "Telekom", "262", "01"),
        ("AU", "Telstra", "505", "01"),
        ("AU", "Optus", "505", "02"),
        ("KR", "SK Telecom", "450", "05"),
        ("CA", "Rogers", "302", "720"),
        ("MX", "Telcel", "334", "020"),
        ("TR", "Turkcell", "286", "01"),
        ("TH", "AIS", "520", "03"),
        ("AE", "du", "424", "03"),
    ],
)
def test_real_operator_facts(country: str, operator: str, mcc: str, mnc: str) -> None:
    networks = {n.operator: (n.mcc, n.mnc) for n in COUNTRIES_BY_CODE[country].networks}
    assert networks[operator] == (mcc, mnc)


# --- catalogue shape ----------------------------------------------------------------------------


def test_at_least_200_base_packages_plus_topups(
    base: list[ProviderPackage], topups: list[ProviderPackage]
) -> None:
    assert len(base) >= 200
    assert topups


def test_every_country_has_local_packages(base: list[ProviderPackage]) -> None:
    local = {p.coverage[0].country_code for p in base if p.kind is PackageKind.LOCAL}
    assert len(local) >= 60
    assert local == COUNTRIES_BY_CODE.keys()
    for p in base:
        if p.kind is PackageKind.LOCAL:
            assert len(p.coverage) == 1
            assert p.region == p.coverage[0].country_name


@pytest.mark.parametrize("region", ["Europe", "Asia", "Americas", "Middle East", "Africa"])
def test_regional_packages_cover_the_regions_real_members(
    base: list[ProviderPackage], region: str
) -> None:
    packages = [p for p in base if p.kind is PackageKind.REGIONAL and p.region == region]
    assert len(packages) >= 3
    members = {c.code for c in countries(Region(region))}
    for p in packages:
        assert {c.country_code for c in p.coverage} == members


def test_global_packages_cover_most_countries(base: list[ProviderPackage]) -> None:
    packages = [p for p in base if p.kind is PackageKind.GLOBAL]
    assert len(packages) >= 3
    for p in packages:
        assert p.region == "Global"
        assert len(p.coverage) >= 0.8 * len(COUNTRIES)


def test_coverage_matches_reference_data(catalogue: tuple[ProviderPackage, ...]) -> None:
    for p in catalogue:
        codes = [c.country_code for c in p.coverage]
        assert len(set(codes)) == len(codes), p.provider_code
        for cov in p.coverage:
            country = COUNTRIES_BY_CODE[cov.country_code]
            assert (cov.country_name, cov.networks) == (country.name, country.networks)


def test_all_sizes_and_unlimited_are_offered(base: list[ProviderPackage]) -> None:
    sizes = {p.data_bytes for p in _data_only(base)}
    assert {gb * GIB for gb in (1, 3, 5, 10, 20)} <= sizes
    unlimited = {p.validity_days for p in base if p.data_bytes is None}
    assert {1, 3, 5, 7, 10, 15, 30} <= unlimited


def test_data_is_binary_gigabytes(catalogue: tuple[ProviderPackage, ...]) -> None:
    for p in catalogue:
        assert p.data_bytes is None or (p.data_bytes > 0 and p.data_bytes % GIB == 0)


def test_validity_between_1_and_30_days(catalogue: tuple[ProviderPackage, ...]) -> None:
    assert all(1 <= p.validity_days <= 30 for p in catalogue)


def test_some_packages_carry_voice_and_sms(base: list[ProviderPackage]) -> None:
    voice = [p for p in base if p.voice_minutes]
    assert len(voice) >= 5
    assert all(p.sms_count > 0 for p in voice)
    assert all(re.search(r"-V\d+$", p.provider_code) for p in voice)


def test_day_passes_are_named_as_such(base: list[ProviderPackage]) -> None:
    for p in base:
        assert p.daily_data == ("/day" in p.name)


def test_provider_codes_are_unique_and_readable(catalogue: tuple[ProviderPackage, ...]) -> None:
    codes = [p.provider_code for p in catalogue]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"SIM(-[A-Z0-9]+)+", code) for code in codes)
    assert {"SIM-JP-5GB-30D", "SIM-EU-10GB-30D", "SIM-GLOBAL-3GB-15D", "SIM-TR-UNL-7D"} <= set(
        codes
    )


def test_names_and_codes_spot_check(catalogue: tuple[ProviderPackage, ...]) -> None:
    by_code = {p.provider_code: p for p in catalogue}
    assert by_code["SIM-JP-5GB-30D"].name == "Japan 5GB 30 Days"
    assert by_code["SIM-EU-10GB-30D"].name == "Europe 10GB 30 Days"
    assert by_code["SIM-GLOBAL-3GB-15D"].name == "Global 3GB 15 Days"
    unlimited = by_code["SIM-TR-UNL-7D"]
    assert unlimited.name == "Turkey Unlimited 7 Days"
    assert unlimited.data_bytes is None
    assert unlimited.validity_days == 7
    voice = by_code["SIM-US-5GB-30D-V60"]
    assert (voice.data_bytes, voice.voice_minutes) == (5 * GIB, 60)


def test_flags(base: list[ProviderPackage]) -> None:
    limited = [p for p in base if p.data_bytes is not None]
    assert sum(p.rechargeable for p in limited) > len(limited) / 2
    assert not any(p.rechargeable for p in base if p.data_bytes is None)
    assert 3 <= sum(p.renewable for p in base) <= 20
    assert 0 < sum(p.daily_data for p in base) < len(base) / 10


def test_async_provisioning_countries_exist() -> None:
    assert "JP" in ASYNC_PROVISIONING_COUNTRIES
    assert ASYNC_PROVISIONING_COUNTRIES.issubset(COUNTRIES_BY_CODE)


# --- prices -------------------------------------------------------------------------------------


def test_costs_are_positive_usd_with_sub_cent_precision(
    catalogue: tuple[ProviderPackage, ...],
) -> None:
    costs = [p.cost for p in catalogue]
    assert all(c.currency == "USD" for c in costs)
    assert all(type(c.amount_e4) is int and c.amount_e4 > 0 for c in costs)
    assert any(c.amount_e4 % 100 for c in costs)
    assert len({c.amount_e4 for c in costs}) > len(costs) / 2


def test_bigger_packages_cost_more_but_less_per_gb(base: list[ProviderPackage]) -> None:
    ladders: defaultdict[str, list[ProviderPackage]] = defaultdict(list)
    for p in _data_only(base):
        ladders[p.region].append(p)
    for region, ladder in ladders.items():
        ladder.sort(key=lambda p: p.data_bytes or 0)
        for small, big in pairwise(ladder):
            assert small.data_bytes is not None and big.data_bytes is not None
            assert small.data_bytes < big.data_bytes, region
            assert small.cost.amount_e4 < big.cost.amount_e4, (small.name, big.name)
            assert small.cost.amount_e4 / small.data_bytes > big.cost.amount_e4 / big.data_bytes, (
                small.name,
                big.name,
            )


def test_longer_unlimited_costs_more_and_more_per_day_than_data(
    base: list[ProviderPackage],
) -> None:
    by_code = {p.provider_code: p for p in base}
    for code in ("JP", "TR", "US"):
        unlimited = sorted(
            (p for p in base if p.region == COUNTRIES_BY_CODE[code].name and p.data_bytes is None),
            key=lambda p: p.validity_days,
        )
        costs = [p.cost.amount_e4 for p in unlimited]
        assert costs == sorted(costs) and len(set(costs)) == len(costs)
        month = by_code[f"SIM-{code}-10GB-30D"]
        assert unlimited[-1].cost.amount_e4 > month.cost.amount_e4


def _cost(catalogue: tuple[ProviderPackage, ...], code: str) -> int:
    return next(p.cost.amount_e4 for p in catalogue if p.provider_code == code)


def test_price_levels_follow_the_market(catalogue: tuple[ProviderPackage, ...]) -> None:
    for cheap in ("TH", "TR", "VN"):
        for dear in ("JP", "US", "CH"):
            assert _cost(catalogue, f"SIM-{cheap}-5GB-30D") < _cost(
                catalogue, f"SIM-{dear}-5GB-30D"
            )
    # A multi-country package costs more than a local one in its cheaper member countries.
    assert _cost(catalogue, "SIM-EU-5GB-30D") > _cost(catalogue, "SIM-FR-5GB-30D")
    assert _cost(catalogue, "SIM-ASIA-5GB-30D") > _cost(catalogue, "SIM-TH-5GB-30D")
    assert _cost(catalogue, "SIM-GLOBAL-5GB-30D") > _cost(catalogue, "SIM-EU-5GB-30D")


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_same_catalogue(catalogue: tuple[ProviderPackage, ...]) -> None:
    assert build_catalogue() == catalogue
    assert build_catalogue(7) == build_catalogue(7)


def test_other_seed_moves_prices_not_codes(catalogue: tuple[ProviderPackage, ...]) -> None:
    other = build_catalogue(7)
    assert [p.provider_code for p in other] == [p.provider_code for p in catalogue]
    assert [p.cost for p in other] != [p.cost for p in catalogue]


# --- top-ups ------------------------------------------------------------------------------------


def test_topups_point_at_rechargeable_base_packages_with_their_coverage(
    catalogue: tuple[ProviderPackage, ...], topups: list[ProviderPackage]
) -> None:
    by_code = {p.provider_code: p for p in catalogue}
    for topup in topups:
        assert topup.provider_code.startswith("SIM-TOPUP-")
        assert topup.data_bytes is not None
        assert topup.topup_for, topup.provider_code
        for code in topup.topup_for:
            target = by_code[code]
            assert not target.is_topup
            assert target.rechargeable
            assert target.coverage == topup.coverage
            assert target.region == topup.region


def test_every_rechargeable_area_has_topups(
    base: list[ProviderPackage], topups: list[ProviderPackage]
) -> None:
    covered = set().union(*(t.topup_for for t in topups))
    assert {p.provider_code for p in base if p.rechargeable} == covered
    sizes = {(t.region, t.data_bytes) for t in topups}
    for p in base:
        if p.rechargeable:
            assert {(p.region, gb * GIB) for gb in (1, 3, 5)} <= sizes
