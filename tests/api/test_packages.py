"""GET /esims/packages through HTTP: pagination, filters, strict parameters, fields and prices.

Expected values are computed from the catalogue rows in the database (cheapest active offer of an
enabled provider per package), independently of the repository's query.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from esimgate.catalog.models import CatalogPackage, PackageOffer
from esimgate.catalog.schemas import package_json
from esimgate.catalog.service import Priced
from esimgate.clock import FrozenClock, epoch_ms
from esimgate.providers.models import ProviderAccount
from esimgate.providers.simulator.networks import COUNTRIES_BY_CODE
from esimgate.runtime import Runtime
from tests.conftest import MakeAccount
from tests.support import SignedClient

PACKAGES = "/api/v1/business/esims/packages"
GIB = 1024**3
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Sellable:
    package: CatalogPackage
    cost_e4: int  # cheapest active offer of an enabled provider

    @property
    def country_codes(self) -> set[str]:
        return {c["code"] for c in self.package.countries}


async def sellable(runtime: Runtime) -> dict[str, Sellable]:
    """Base packages on sale in USD, by code, computed in Python from the raw rows."""
    async with runtime.sessions() as session:
        enabled = set(
            await session.scalars(
                select(ProviderAccount.id).where(ProviderAccount.enabled.is_(True))
            )
        )
        offers = (await session.scalars(select(PackageOffer))).all()
        packages = {p.id: p for p in await session.scalars(select(CatalogPackage))}
    cheapest: dict[int, int] = {}
    for offer in offers:
        if offer.active and offer.provider_account_id in enabled and offer.currency == "USD":
            cheapest[offer.package_id] = min(
                cheapest.get(offer.package_id, offer.cost_e4), offer.cost_e4
            )
    return {
        packages[pid].code: Sellable(packages[pid], cost)
        for pid, cost in cheapest.items()
        if packages[pid].active and not packages[pid].is_topup
    }


@pytest.fixture
async def catalogue(runtime: Runtime) -> dict[str, Sellable]:
    on_sale = await sellable(runtime)
    assert len(on_sale) > 200  # enough for several pages of 50 and of 100
    return on_sale


async def get_ok(api: SignedClient, **params: Any) -> dict[str, Any]:
    response = await api.get(PACKAGES, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True, response.text
    return body["data"]


async def all_pages(api: SignedClient, **params: Any) -> list[dict[str, Any]]:
    """Every package of a listing, walking pages of 100; checks the pagination on the way."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        data = await get_ok(api, page=page, limit=100, **params)
        pagination = data["pagination"]
        assert pagination["page"] == page and pagination["limit"] == 100, pagination
        items += data["packages"]
        if page >= pagination["total_pages"]:
            assert len(items) == pagination["total"], pagination
            return items
        assert len(data["packages"]) == 100, pagination
        page += 1


def codes(items: list[dict[str, Any]]) -> list[str]:
    return [item["package_code"] for item in items]


def half_up(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


# --- pagination ---------------------------------------------------------------------------------


async def test_default_page_is_the_first_fifty(
    api: SignedClient, catalogue: dict[str, Sellable]
) -> None:
    data = await get_ok(api)
    total = len(catalogue)
    assert data["pagination"] == {
        "page": 1,
        "limit": 50,
        "total": total,
        "total_pages": math.ceil(total / 50),
    }
    assert len(data["packages"]) == 50
    assert set(codes(data["packages"])) <= set(catalogue)


async def test_page_two_continues_where_page_one_stopped(api: SignedClient) -> None:
    first = await get_ok(api, page=1)
    second = await get_ok(api, page=2)
    both = await get_ok(api, page=1, limit=100)
    assert second["pagination"]["page"] == 2
    assert len(second["packages"]) == 50
    assert not set(codes(first["packages"])) & set(codes(second["packages"]))
    assert codes(first["packages"]) + codes(second["packages"]) == codes(both["packages"])


async def test_last_page_is_short_and_beyond_the_end_is_empty(
    api: SignedClient, catalogue: dict[str, Sellable]
) -> None:
    total = len(catalogue)
    last = math.ceil(total / 50)
    data = await get_ok(api, page=last)
    assert len(data["packages"]) == total - 50 * (last - 1)
    assert data["pagination"] == {"page": last, "limit": 50, "total": total, "total_pages": last}

    beyond = await get_ok(api, page=last + 1)
    assert beyond["packages"] == []
    assert beyond["pagination"] == {
        "page": last + 1,
        "limit": 50,
        "total": total,
        "total_pages": last,
    }


async def test_walking_every_page_lists_each_package_once(
    api: SignedClient, catalogue: dict[str, Sellable]
) -> None:
    listed = codes(await all_pages(api))
    assert len(listed) == len(set(listed))
    assert set(listed) == set(catalogue)


async def test_limit_of_one_hundred_is_allowed(
    api: SignedClient, catalogue: dict[str, Sellable]
) -> None:
    data = await get_ok(api, limit=100)
    assert len(data["packages"]) == 100
    assert data["pagination"] == {
        "page": 1,
        "limit": 100,
        "total": len(catalogue),
        "total_pages": math.ceil(len(catalogue) / 100),
    }
    small = await get_ok(api, limit=1, page=3)
    assert codes(small["packages"]) == [codes(data["packages"])[2]]
    assert small["pagination"]["total_pages"] == len(catalogue)


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"limit": "101"}, ["limit"]),
        ({"limit": "0"}, ["limit"]),
        ({"limit": "-1"}, ["limit"]),
        ({"limit": "abc"}, ["limit"]),
        ({"limit": "1.5"}, ["limit"]),
        ({"limit": ""}, ["limit"]),
        ({"page": "0"}, ["page"]),
        ({"page": "-2"}, ["page"]),
        ({"page": "1.5"}, ["page"]),
        ({"page": "two"}, ["page"]),
        ({"page": str(10**30)}, ["page"]),
        ({"type": "planet"}, ["type"]),
        ({"type": ""}, ["type"]),
        ({"search": "x" * 101}, ["search"]),
        ({"page": "0", "limit": "1000"}, ["limit", "page"]),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    api: SignedClient, params: dict[str, str], names: list[str]
) -> None:
    response = await api.get(PACKAGES, params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False, response.text
    assert body["code"] == "INVALID_PARAMETER", response.text
    assert body["details"] == {"parameters": names}, response.text
    for name in names:
        assert name in body["error"], response.text


async def test_search_of_exactly_one_hundred_characters_is_allowed(api: SignedClient) -> None:
    data = await get_ok(api, search="x" * 100)
    assert data["packages"] == []
    assert data["pagination"]["total"] == 0


async def test_unauthenticated_listing_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(PACKAGES)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "AUTHENTICATION_REQUIRED", response.text


# --- search and type ----------------------------------------------------------------------------


@pytest.mark.parametrize("term", ["japan", "JAPAN", "Japan", "  jApAn  "])
async def test_search_by_country_name_is_case_insensitive(
    api: SignedClient, catalogue: dict[str, Sellable], term: str
) -> None:
    expected = {code for code, s in catalogue.items() if "JP" in s.country_codes}
    assert len(expected) > 10  # local Japan packages, Asia regional, global
    listed = await all_pages(api, search=term)
    assert set(codes(listed)) == expected
    assert len(listed) == len(expected)


async def test_search_by_region(api: SignedClient, catalogue: dict[str, Sellable]) -> None:
    expected = {code for code, s in catalogue.items() if s.package.region == "Europe"}
    assert expected
    for term in ("europe", "EUROPE"):
        listed = await all_pages(api, search=term)
        assert set(codes(listed)) == expected, term
        assert {item["region"] for item in listed} == {"Europe"}


@pytest.mark.parametrize(("term", "iso"), [("jp", "JP"), ("JP", "JP"), ("Fr", "FR"), ("us", "US")])
async def test_search_by_iso_code_finds_exactly_that_countrys_packages(
    api: SignedClient, catalogue: dict[str, Sellable], term: str, iso: str
) -> None:
    """A two-letter search is a country code, not a substring: 'fr' is not South Africa,
    'us' is not Austria, 'jp' is not a package whose code happens to contain JP."""
    expected = {code for code, s in catalogue.items() if iso in s.country_codes}
    assert len(expected) > 10
    listed = await all_pages(api, search=term)
    assert set(codes(listed)) == expected, term
    assert all(iso in item["country_codes"] for item in listed), term


async def test_search_by_package_name(api: SignedClient, catalogue: dict[str, Sellable]) -> None:
    (japan_unlimited,) = (
        code for code, s in catalogue.items() if s.package.name == "Japan Unlimited 7 Days"
    )
    listed = await all_pages(api, search="japan unlimited 7 DAYS")
    assert codes(listed) == [japan_unlimited]

    expected = {code for code, s in catalogue.items() if "5gb 30 days" in s.package.name.lower()}
    assert len(expected) > 20
    listed = await all_pages(api, search="5GB 30 days")
    assert set(codes(listed)) == expected
    assert all("5GB 30 Days" in item["name"] for item in listed)


async def test_search_by_package_code(api: SignedClient, catalogue: dict[str, Sellable]) -> None:
    code = next(c for c, s in catalogue.items() if s.package.name == "Japan 5GB 30 Days")
    for term in (code, code.lower()):
        data = await get_ok(api, search=term)
        assert codes(data["packages"]) == [code], term
        assert data["pagination"]["total"] == 1


@pytest.mark.parametrize("term", ["%", "_", "jap%n", "jap_n", "\\", "%japan%"])
async def test_search_wildcards_are_literal(api: SignedClient, term: str) -> None:
    data = await get_ok(api, search=term)
    assert data["packages"] == [], term
    assert data["pagination"]["total"] == 0


async def test_blank_search_is_no_filter(api: SignedClient, catalogue: dict[str, Sellable]) -> None:
    for term in ("", "   "):
        data = await get_ok(api, search=term)
        assert data["pagination"]["total"] == len(catalogue), term


@pytest.mark.parametrize("kind", ["local", "regional", "global"])
async def test_type_filter(api: SignedClient, catalogue: dict[str, Sellable], kind: str) -> None:
    expected = {code for code, s in catalogue.items() if s.package.kind == kind}
    assert expected
    listed = await all_pages(api, type=kind)
    assert set(codes(listed)) == expected
    assert {item["type"] for item in listed} == {kind}


async def test_type_and_search_combine(api: SignedClient, catalogue: dict[str, Sellable]) -> None:
    expected = {
        code
        for code, s in catalogue.items()
        if s.package.kind == "regional" and "JP" in s.country_codes
    }
    assert expected
    listed = await all_pages(api, type="regional", search="japan")
    assert set(codes(listed)) == expected


async def test_topups_are_not_listed(api: SignedClient, runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        topup_codes = set(
            await session.scalars(
                select(CatalogPackage.code).where(CatalogPackage.is_topup.is_(True))
            )
        )
    assert topup_codes
    listed = codes(await all_pages(api))
    assert not topup_codes & set(listed)
    assert not [code for code in listed if code.startswith("TOPUP_")]
    data = await get_ok(api, search="top-up")
    assert data["pagination"]["total"] == 0, data


# --- fields -------------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


async def test_every_package_has_the_documented_fields(
    api: SignedClient, catalogue: dict[str, Sellable]
) -> None:
    listed = await all_pages(api)
    assert len(listed) == len(catalogue)
    for item in listed:
        row = catalogue[item["package_code"]].package
        where = item["package_code"]
        assert re.fullmatch(r"[A-Z]{9}", item["package_code"]), where
        assert item["name"] == row.name, where
        assert item["region"] == row.region and isinstance(item["region"], str), where
        assert item["type"] == row.kind and item["type"] in {"local", "regional", "global"}
        assert item["countries"] == [c["name"] for c in row.countries], where
        assert item["country_codes"] == [c["code"] for c in row.countries], where
        assert all(re.fullmatch(r"[A-Z]{2}", cc) for cc in item["country_codes"]), where
        assert len(item["countries"]) == len(item["country_codes"]) >= 1, where
        if row.data_bytes is None:
            assert item["data_amount_gb"] == 0 and item["is_unlimited"] is True, where
        else:
            assert item["data_amount_gb"] == row.data_bytes / GIB, where
            assert item["is_unlimited"] is False, where
        assert is_number(item["data_amount_gb"]), where
        assert type(item["validity_days"]) is int and item["validity_days"] > 0, where
        assert is_number(item["cost"]) and item["cost"] > 0, where
        assert Decimal(str(item["cost"])).as_tuple().exponent >= -2, where  # type: ignore[operator]
        assert item["currency"] == "USD", where
        features = item["features"]
        assert set(features) == {"voice_minutes", "sms_count", "is_rechargeable"}, where
        assert features["voice_minutes"] == row.voice_minutes, where
        assert features["sms_count"] == row.sms_count, where
        assert type(features["voice_minutes"]) is int and type(features["sms_count"]) is int
        assert features["is_rechargeable"] is row.rechargeable, where
        assert item["has_voice"] is (row.voice_minutes > 0), where
        assert item["has_sms"] is (row.sms_count > 0), where
        networks = item["locationNetworkList"]
        assert [n["locationName"] for n in networks] == item["countries"], where
        for location in networks:
            assert location["operatorList"], (where, location)
            for operator in location["operatorList"]:
                assert isinstance(operator["operatorName"], str) and operator["operatorName"]
                assert operator["networkType"] in {"4G", "5G"}, (where, operator)
        if row.kind == "local":
            cc = item["country_codes"][0].lower()
            assert item["flag_url"] == f"https://flagcdn.com/w80/{cc}.png", where
        else:
            assert item["flag_url"] is None or isinstance(item["flag_url"], str), where


async def test_known_packages_in_detail(api: SignedClient) -> None:
    (japan,) = (await get_ok(api, search="Japan 5GB 30 Days"))["packages"]
    jp_networks = COUNTRIES_BY_CODE["JP"].networks
    expected = {
        "name": "Japan 5GB 30 Days",
        "region": "Japan",
        "type": "local",
        "countries": ["Japan"],
        "country_codes": ["JP"],
        "data_amount_gb": 5,
        "validity_days": 30,
        "currency": "USD",
        "features": {"voice_minutes": 0, "sms_count": 0, "is_rechargeable": True},
        "is_unlimited": False,
        "has_voice": False,
        "has_sms": False,
        "flag_url": "https://flagcdn.com/w80/jp.png",
    }
    assert {key: japan.get(key) for key in expected} == expected, japan
    (location,) = japan["locationNetworkList"]
    assert location["locationName"] == "Japan"
    assert [(o["operatorName"], o["networkType"]) for o in location["operatorList"]] == [
        (n.operator, "5G" if "5G" in n.radio else "4G") for n in jp_networks
    ]

    (unlimited,) = (await get_ok(api, search="Japan Unlimited 7 Days"))["packages"]
    assert unlimited["data_amount_gb"] == 0 and type(unlimited["data_amount_gb"]) is int
    assert unlimited["is_unlimited"] is True
    assert unlimited["validity_days"] == 7
    assert unlimited["features"]["is_rechargeable"] is False

    (voice,) = (await get_ok(api, search="United States 5GB 30 Days + 60 Min"))["packages"]
    assert voice["features"] == {"voice_minutes": 60, "sms_count": 50, "is_rechargeable": True}
    assert (voice["has_voice"], voice["has_sms"]) == (True, True)

    europe = (await get_ok(api, search="Europe 10GB 30 Days"))["packages"]
    (regional,) = [p for p in europe if p["name"] == "Europe 10GB 30 Days"]
    assert regional["type"] == "regional"
    assert regional["region"] == "Europe"
    assert {"FR", "DE", "ES"} <= set(regional["country_codes"])
    assert len(regional["locationNetworkList"]) == len(regional["country_codes"])


def test_package_json_renders_every_field_from_the_row() -> None:
    """The shape on its own, for a row the simulator never produces: SMS without voice,
    fractional GB, a multi-country package, a zero-decimal currency."""
    now = datetime.now(UTC)
    networks = [
        {
            "locationName": "France",
            "operatorList": [{"operatorName": "Orange", "networkType": "5G"}],
        },
        {"locationName": "Germany", "operatorList": [{"operatorName": "O2", "networkType": "4G"}]},
    ]
    package = CatalogPackage(
        id=1,
        code="ABCDEFGHI",
        identity_key="x" * 64,
        name="Twin 1.5GB",
        kind="regional",
        region="Europe",
        countries=[{"code": "FR", "name": "France"}, {"code": "DE", "name": "Germany"}],
        networks=networks,
        data_bytes=3 * GIB // 2,
        validity_days=10,
        voice_minutes=0,
        sms_count=25,
        is_topup=False,
        rechargeable=False,
        renewable=False,
        daily_data=True,
        search_text="",
        active=True,
        created_at=now,
        updated_at=now,
    )
    rendered = package_json(Priced(package=package, price_minor=1_235, cost_e4=123_456), "JPY")
    assert rendered == {
        "package_code": "ABCDEFGHI",
        "name": "Twin 1.5GB",
        "region": "Europe",
        "type": "regional",
        "countries": ["France", "Germany"],
        "country_codes": ["FR", "DE"],
        "data_amount_gb": 1.5,
        "validity_days": 10,
        "cost": 1235,
        "currency": "JPY",
        "features": {"voice_minutes": 0, "sms_count": 25, "is_rechargeable": False},
        "is_unlimited": False,
        "has_voice": False,
        "has_sms": True,
        "is_daily": True,
        "locationNetworkList": networks,
        "flag_url": None,
    }
    usd = package_json(Priced(package=package, price_minor=1_235, cost_e4=123_456), "USD")
    assert usd["cost"] == 12.35


# --- prices -------------------------------------------------------------------------------------


async def test_prices_follow_each_accounts_markup(
    client: httpx.AsyncClient,
    api: SignedClient,
    make_account: MakeAccount,
    clock: FrozenClock,
    catalogue: dict[str, Sellable],
) -> None:
    def signed(creds: Any) -> SignedClient:
        return SignedClient(client, creds, lambda: epoch_ms(clock.now()))

    ten_percent = signed(await make_account("ten-percent", markup_percent_bp=1_000))
    fifty_cents = signed(await make_account("fifty-cents", markup_fixed_minor=50))
    both = signed(await make_account("both", markup_percent_bp=1_250, markup_fixed_minor=199))

    plain = {i["package_code"]: i["cost"] for i in await all_pages(api)}
    tenth = {i["package_code"]: i["cost"] for i in await all_pages(ten_percent)}
    fixed = {i["package_code"]: i["cost"] for i in await all_pages(fifty_cents)}
    mixed = {i["package_code"]: i["cost"] for i in await all_pages(both)}
    assert set(plain) == set(tenth) == set(fixed) == set(mixed) == set(catalogue)
    rounding_mattered = 0
    for code, row in catalogue.items():
        cost = Decimal(row.cost_e4) / 10_000
        assert plain[code] == float(half_up(cost)), code
        assert tenth[code] == float(half_up(cost * Decimal("1.1"))), (code, row.cost_e4)
        assert fixed[code] == float(half_up(cost) + Decimal("0.50")), (code, row.cost_e4)
        expected_mixed = half_up(cost * Decimal("1.125")) + Decimal("1.99")
        assert mixed[code] == float(expected_mixed), (code, row.cost_e4)
        rounding_mattered += half_up(cost * Decimal("1.1")) != cost * Decimal("1.1")
    assert rounding_mattered > 0  # the examples exercise rounding, not just exact products
