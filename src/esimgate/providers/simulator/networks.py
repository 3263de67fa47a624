"""Real-world reference data for the simulator: countries and their mobile network operators.

Country codes are ISO 3166-1 alpha-2; MCC/MNC pairs are the operators' real PLMN identities (the
MNC keeps its real length: two digits in most countries, three in North and Latin America). Where
an operator holds several MNCs, the one its current LTE/5G network broadcasts is listed; India
assigns codes per licence circle, and Delhi's are used. ``radio`` is conservative: "5G" is listed
only where the operator runs a commercial 5G network.

This is pure data: prices and packages live in :mod:`esimgate.providers.simulator.catalogue`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from esimgate.providers.base import Coverage, Network


class Region(enum.StrEnum):
    """The continent-level region a country's packages are sold under."""

    EUROPE = "Europe"
    ASIA = "Asia"
    AMERICAS = "Americas"
    MIDDLE_EAST = "Middle East"
    AFRICA = "Africa"
    OCEANIA = "Oceania"


@dataclass(frozen=True, slots=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    name: str  # English short name
    region: Region
    networks: tuple[Network, ...]

    def coverage(self) -> Coverage:
        return Coverage(self.code, self.name, self.networks)


_4G: Final = ("4G",)
_5G: Final = ("4G", "5G")

_EU: Final = Region.EUROPE
_AS: Final = Region.ASIA
_AM: Final = Region.AMERICAS
_ME: Final = Region.MIDDLE_EAST
_AF: Final = Region.AFRICA
_OC: Final = Region.OCEANIA

COUNTRIES: Final[tuple[Country, ...]] = (
    # Europe
    Country(
        "GB",
        "United Kingdom",
        _EU,
        (
            Network("EE", "234", "30", _5G),
            Network("Vodafone", "234", "15", _5G),
            Network("O2", "234", "10", _5G),
        ),
    ),
    Country(
        "FR",
        "France",
        _EU,
        (
            Network("Orange", "208", "01", _5G),
            Network("SFR", "208", "10", _5G),
            Network("Bouygues Telecom", "208", "20", _5G),
        ),
    ),
    Country(
        "DE",
        "Germany",
        _EU,
        (
            Network("Telekom", "262", "01", _5G),
            Network("Vodafone", "262", "02", _5G),
            Network("O2", "262", "03", _5G),
        ),
    ),
    Country(
        "IT",
        "Italy",
        _EU,
        (
            Network("TIM", "222", "01", _5G),
            Network("Vodafone", "222", "10", _5G),
            Network("WindTre", "222", "88", _5G),
        ),
    ),
    Country(
        "ES",
        "Spain",
        _EU,
        (
            Network("Movistar", "214", "07", _5G),
            Network("Vodafone", "214", "01", _5G),
            Network("Orange", "214", "03", _5G),
        ),
    ),
    Country(
        "PT",
        "Portugal",
        _EU,
        (
            Network("MEO", "268", "06", _5G),
            Network("Vodafone", "268", "01", _5G),
            Network("NOS", "268", "03", _5G),
        ),
    ),
    Country(
        "NL",
        "Netherlands",
        _EU,
        (
            Network("KPN", "204", "08", _5G),
            Network("Vodafone", "204", "04", _5G),
            Network("Odido", "204", "16", _5G),
        ),
    ),
    Country(
        "BE",
        "Belgium",
        _EU,
        (
            Network("Proximus", "206", "01", _5G),
            Network("Orange", "206", "10", _5G),
            Network("BASE", "206", "20", _5G),
        ),
    ),
    Country(
        "LU",
        "Luxembourg",
        _EU,
        (
            Network("POST", "270", "01", _5G),
            Network("Tango", "270", "77", _5G),
            Network("Orange", "270", "99", _5G),
        ),
    ),
    Country(
        "CH",
        "Switzerland",
        _EU,
        (
            Network("Swisscom", "228", "01", _5G),
            Network("Sunrise", "228", "02", _5G),
            Network("Salt", "228", "03", _5G),
        ),
    ),
    Country(
        "AT",
        "Austria",
        _EU,
        (
            Network("A1", "232", "01", _5G),
            Network("Magenta Telekom", "232", "03", _5G),
            Network("Drei", "232", "10", _5G),
        ),
    ),
    Country(
        "IE",
        "Ireland",
        _EU,
        (
            Network("Vodafone", "272", "01", _5G),
            Network("Three", "272", "05", _5G),
            Network("eir", "272", "03", _5G),
        ),
    ),
    Country(
        "GR",
        "Greece",
        _EU,
        (
            Network("Cosmote", "202", "01", _5G),
            Network("Vodafone", "202", "05", _5G),
            Network("Nova", "202", "10", _5G),
        ),
    ),
    Country(
        "CY",
        "Cyprus",
        _EU,
        (
            Network("Cyta", "280", "01", _5G),
            Network("Epic", "280", "10", _5G),
        ),
    ),
    Country(
        "MT",
        "Malta",
        _EU,
        (
            Network("Epic", "278", "01", _5G),
            Network("GO", "278", "21", _4G),
            Network("Melita", "278", "77", _4G),
        ),
    ),
    Country(
        "TR",
        "Turkey",
        _EU,
        (
            Network("Turkcell", "286", "01", _4G),
            Network("Vodafone", "286", "02", _4G),
            Network("Türk Telekom", "286", "03", _4G),
        ),
    ),
    Country(
        "PL",
        "Poland",
        _EU,
        (
            Network("Plus", "260", "01", _5G),
            Network("T-Mobile", "260", "02", _5G),
            Network("Orange", "260", "03", _5G),
        ),
    ),
    Country(
        "CZ",
        "Czech Republic",
        _EU,
        (
            Network("T-Mobile", "230", "01", _5G),
            Network("O2", "230", "02", _5G),
            Network("Vodafone", "230", "03", _5G),
        ),
    ),
    Country(
        "SK",
        "Slovakia",
        _EU,
        (
            Network("Orange", "231", "01", _5G),
            Network("Telekom", "231", "02", _5G),
            Network("O2", "231", "06", _5G),
        ),
    ),
    Country(
        "HU",
        "Hungary",
        _EU,
        (
            Network("Telekom", "216", "30", _5G),
            Network("Yettel", "216", "01", _5G),
            Network("One", "216", "70", _5G),
        ),
    ),
    Country(
        "SI",
        "Slovenia",
        _EU,
        (
            Network("Telekom Slovenije", "293", "41", _5G),
            Network("A1", "293", "40", _5G),
            Network("Telemach", "293", "70", _5G),
        ),
    ),
    Country(
        "HR",
        "Croatia",
        _EU,
        (
            Network("Hrvatski Telekom", "219", "01", _5G),
            Network("Telemach", "219", "02", _5G),
            Network("A1", "219", "10", _5G),
        ),
    ),
    Country(
        "RS",
        "Serbia",
        _EU,
        (
            Network("Yettel", "220", "01", _4G),
            Network("mts", "220", "03", _4G),
            Network("A1", "220", "05", _4G),
        ),
    ),
    Country(
        "ME",
        "Montenegro",
        _EU,
        (
            Network("One", "297", "01", _4G),
            Network("Crnogorski Telekom", "297", "02", _4G),
            Network("m:tel", "297", "03", _4G),
        ),
    ),
    Country(
        "MK",
        "North Macedonia",
        _EU,
        (
            Network("Makedonski Telekom", "294", "01", _5G),
            Network("A1", "294", "03", _5G),
        ),
    ),
    Country(
        "BG",
        "Bulgaria",
        _EU,
        (
            Network("A1", "284", "01", _5G),
            Network("Vivacom", "284", "03", _5G),
            Network("Yettel", "284", "05", _5G),
        ),
    ),
    Country(
        "RO",
        "Romania",
        _EU,
        (
            Network("Vodafone", "226", "01", _5G),
            Network("Orange", "226", "10", _5G),
            Network("Digi", "226", "05", _5G),
        ),
    ),
    Country(
        "UA",
        "Ukraine",
        _EU,
        (
            Network("Kyivstar", "255", "03", _4G),
            Network("Vodafone", "255", "01", _4G),
            Network("lifecell", "255", "06", _4G),
        ),
    ),
    Country(
        "SE",
        "Sweden",
        _EU,
        (
            Network("Telia", "240", "01", _5G),
            Network("Tele2", "240", "07", _5G),
            Network("Telenor", "240", "08", _5G),
        ),
    ),
    Country(
        "NO",
        "Norway",
        _EU,
        (
            Network("Telenor", "242", "01", _5G),
            Network("Telia", "242", "02", _5G),
        ),
    ),
    Country(
        "DK",
        "Denmark",
        _EU,
        (
            Network("TDC", "238", "01", _5G),
            Network("Telenor", "238", "02", _5G),
            Network("Telia", "238", "20", _5G),
        ),
    ),
    Country(
        "FI",
        "Finland",
        _EU,
        (
            Network("Elisa", "244", "05", _5G),
            Network("DNA", "244", "12", _5G),
            Network("Telia", "244", "91", _5G),
        ),
    ),
    Country(
        "IS",
        "Iceland",
        _EU,
        (
            Network("Síminn", "274", "01", _5G),
            Network("Vodafone", "274", "02", _5G),
            Network("Nova", "274", "11", _5G),
        ),
    ),
    Country(
        "EE",
        "Estonia",
        _EU,
        (
            Network("Telia", "248", "01", _5G),
            Network("Elisa", "248", "02", _5G),
            Network("Tele2", "248", "03", _5G),
        ),
    ),
    Country(
        "LV",
        "Latvia",
        _EU,
        (
            Network("LMT", "247", "01", _5G),
            Network("Tele2", "247", "02", _5G),
            Network("Bite", "247", "05", _5G),
        ),
    ),
    Country(
        "LT",
        "Lithuania",
        _EU,
        (
            Network("Telia", "246", "01", _5G),
            Network("Bite", "246", "02", _5G),
            Network("Tele2", "246", "03", _5G),
        ),
    ),
    # Asia
    Country(
        "JP",
        "Japan",
        _AS,
        (
            Network("NTT Docomo", "440", "10", _5G),
            Network("SoftBank", "440", "20", _5G),
            Network("KDDI au", "440", "50", _5G),
        ),
    ),
    Country(
        "KR",
        "South Korea",
        _AS,
        (
            Network("SK Telecom", "450", "05", _5G),
            Network("KT", "450", "08", _5G),
            Network("LG U+", "450", "06", _5G),
        ),
    ),
    Country(
        "CN",
        "China",
        _AS,
        (
            Network("China Mobile", "460", "00", _5G),
            Network("China Unicom", "460", "01", _5G),
            Network("China Telecom", "460", "11", _5G),
        ),
    ),
    Country(
        "HK",
        "Hong Kong",
        _AS,
        (
            Network("CSL", "454", "00", _5G),
            Network("SmarTone", "454", "06", _5G),
            Network("China Mobile Hong Kong", "454", "12", _5G),
        ),
    ),
    Country(
        "MO",
        "Macau",
        _AS,
        (
            Network("CTM", "455", "01", _5G),
            Network("SmarTone", "455", "00", _4G),
        ),
    ),
    Country(
        "TW",
        "Taiwan",
        _AS,
        (
            Network("Chunghwa Telecom", "466", "92", _5G),
            Network("Taiwan Mobile", "466", "97", _5G),
            Network("FarEasTone", "466", "01", _5G),
        ),
    ),
    Country(
        "SG",
        "Singapore",
        _AS,
        (
            Network("Singtel", "525", "01", _5G),
            Network("StarHub", "525", "05", _5G),
            Network("M1", "525", "03", _5G),
        ),
    ),
    Country(
        "MY",
        "Malaysia",
        _AS,
        (
            Network("Maxis", "502", "12", _5G),
            Network("CelcomDigi", "502", "13", _5G),
            Network("U Mobile", "502", "18", _5G),
        ),
    ),
    Country(
        "TH",
        "Thailand",
        _AS,
        (
            Network("AIS", "520", "03", _5G),
            Network("TrueMove H", "520", "04", _5G),
            Network("dtac", "520", "05", _5G),
        ),
    ),
    Country(
        "VN",
        "Vietnam",
        _AS,
        (
            Network("Viettel", "452", "04", _5G),
            Network("Vinaphone", "452", "02", _4G),
            Network("MobiFone", "452", "01", _4G),
        ),
    ),
    Country(
        "KH",
        "Cambodia",
        _AS,
        (
            Network("Cellcard", "456", "01", _4G),
            Network("Smart", "456", "06", _4G),
            Network("Metfone", "456", "08", _4G),
        ),
    ),
    Country(
        "ID",
        "Indonesia",
        _AS,
        (
            Network("Telkomsel", "510", "10", _5G),
            Network("Indosat", "510", "01", _5G),
            Network("XL Axiata", "510", "11", _5G),
        ),
    ),
    Country(
        "PH",
        "Philippines",
        _AS,
        (
            Network("Globe", "515", "02", _5G),
            Network("Smart", "515", "03", _5G),
        ),
    ),
    Country(
        "IN",
        "India",
        _AS,
        (
            Network("Airtel", "404", "10", _5G),
            Network("Vi", "404", "11", _4G),
        ),
    ),
    Country(
        "LK",
        "Sri Lanka",
        _AS,
        (
            Network("Dialog", "413", "02", _4G),
            Network("SLTMobitel", "413", "01", _4G),
        ),
    ),
    Country(
        "NP",
        "Nepal",
        _AS,
        (
            Network("Nepal Telecom", "429", "01", _4G),
            Network("Ncell", "429", "02", _4G),
        ),
    ),
    Country(
        "BD",
        "Bangladesh",
        _AS,
        (
            Network("Grameenphone", "470", "01", _4G),
            Network("Robi", "470", "02", _4G),
            Network("Banglalink", "470", "03", _4G),
        ),
    ),
    Country(
        "PK",
        "Pakistan",
        _AS,
        (
            Network("Jazz", "410", "01", _4G),
            Network("Zong", "410", "04", _4G),
        ),
    ),
    Country(
        "MV",
        "Maldives",
        _AS,
        (
            Network("Dhiraagu", "472", "01", _5G),
            Network("Ooredoo", "472", "02", _5G),
        ),
    ),
    Country(
        "MN",
        "Mongolia",
        _AS,
        (
            Network("Unitel", "428", "88", _4G),
            Network("Mobicom", "428", "99", _4G),
        ),
    ),
    Country(
        "KZ",
        "Kazakhstan",
        _AS,
        (
            Network("Beeline", "401", "01", _4G),
            Network("Kcell", "401", "02", _4G),
        ),
    ),
    Country(
        "UZ",
        "Uzbekistan",
        _AS,
        (
            Network("Beeline", "434", "04", _4G),
            Network("Ucell", "434", "05", _4G),
        ),
    ),
    # The South Caucasus is sold with Asia, as the UN geoscheme places it (Western Asia).
    Country(
        "GE",
        "Georgia",
        _AS,
        (
            Network("Magti", "282", "02", _4G),
            Network("Silknet", "282", "01", _4G),
            Network("Cellfie", "282", "04", _4G),
        ),
    ),
    Country(
        "AM",
        "Armenia",
        _AS,
        (
            Network("Team", "283", "01", _4G),
            Network("Viva", "283", "05", _4G),
            Network("Ucom", "283", "10", _4G),
        ),
    ),
    Country(
        "AZ",
        "Azerbaijan",
        _AS,
        (
            Network("Azercell", "400", "01", _4G),
            Network("Bakcell", "400", "02", _4G),
            Network("Nar", "400", "04", _4G),
        ),
    ),
    # Middle East
    Country(
        "AE",
        "United Arab Emirates",
        _ME,
        (
            Network("e&", "424", "02", _5G),
            Network("du", "424", "03", _5G),
        ),
    ),
    Country(
        "SA",
        "Saudi Arabia",
        _ME,
        (
            Network("stc", "420", "01", _5G),
            Network("Mobily", "420", "03", _5G),
            Network("Zain", "420", "04", _5G),
        ),
    ),
    Country(
        "QA",
        "Qatar",
        _ME,
        (
            Network("Ooredoo", "427", "01", _5G),
            Network("Vodafone", "427", "02", _5G),
        ),
    ),
    Country(
        "KW",
        "Kuwait",
        _ME,
        (
            Network("Zain", "419", "02", _5G),
            Network("Ooredoo", "419", "03", _5G),
            Network("stc", "419", "04", _5G),
        ),
    ),
    Country(
        "BH",
        "Bahrain",
        _ME,
        (
            Network("Batelco", "426", "01", _5G),
            Network("Zain", "426", "02", _5G),
            Network("stc", "426", "04", _5G),
        ),
    ),
    Country(
        "OM",
        "Oman",
        _ME,
        (
            Network("Omantel", "422", "02", _5G),
            Network("Ooredoo", "422", "03", _5G),
        ),
    ),
    Country(
        "IQ",
        "Iraq",
        _ME,
        (
            Network("Asiacell", "418", "05", _4G),
            Network("Zain", "418", "20", _4G),
            Network("Korek", "418", "40", _4G),
        ),
    ),
    Country(
        "JO",
        "Jordan",
        _ME,
        (
            Network("Zain", "416", "01", _5G),
            Network("Umniah", "416", "03", _5G),
            Network("Orange", "416", "77", _5G),
        ),
    ),
    Country(
        "IL",
        "Israel",
        _ME,
        (
            Network("Partner", "425", "01", _5G),
            Network("Cellcom", "425", "02", _5G),
            Network("Pelephone", "425", "03", _5G),
        ),
    ),
    Country(
        "LB",
        "Lebanon",
        _ME,
        (
            Network("Alfa", "415", "01", _4G),
            Network("touch", "415", "03", _4G),
        ),
    ),
    # Africa
    Country(
        "EG",
        "Egypt",
        _AF,
        (
            Network("Vodafone", "602", "02", _4G),
            Network("Orange", "602", "01", _4G),
            Network("e&", "602", "03", _4G),
        ),
    ),
    Country(
        "MA",
        "Morocco",
        _AF,
        (
            Network("Maroc Telecom", "604", "01", _4G),
            Network("Orange", "604", "00", _4G),
            Network("inwi", "604", "02", _4G),
        ),
    ),
    Country(
        "TN",
        "Tunisia",
        _AF,
        (
            Network("Orange", "605", "01", _4G),
            Network("Tunisie Telecom", "605", "02", _4G),
            Network("Ooredoo", "605", "03", _4G),
        ),
    ),
    Country(
        "DZ",
        "Algeria",
        _AF,
        (
            Network("Mobilis", "603", "01", _4G),
            Network("Djezzy", "603", "02", _4G),
            Network("Ooredoo", "603", "03", _4G),
        ),
    ),
    Country(
        "ZA",
        "South Africa",
        _AF,
        (
            Network("Vodacom", "655", "01", _5G),
            Network("MTN", "655", "10", _5G),
            Network("Cell C", "655", "07", _4G),
        ),
    ),
    Country(
        "KE",
        "Kenya",
        _AF,
        (
            Network("Safaricom", "639", "02", _5G),
            Network("Airtel", "639", "03", _4G),
        ),
    ),
    Country(
        "TZ",
        "Tanzania",
        _AF,
        (
            Network("Vodacom", "640", "04", _5G),
            Network("Airtel", "640", "05", _4G),
            Network("Yas", "640", "02", _4G),
        ),
    ),
    Country(
        "UG",
        "Uganda",
        _AF,
        (
            Network("MTN", "641", "10", _4G),
            Network("Airtel", "641", "01", _4G),
        ),
    ),
    Country(
        "RW",
        "Rwanda",
        _AF,
        (Network("MTN", "635", "10", _4G),),
    ),
    Country(
        "NG",
        "Nigeria",
        _AF,
        (
            Network("MTN", "621", "30", _5G),
            Network("Airtel", "621", "20", _4G),
            Network("Glo", "621", "50", _4G),
        ),
    ),
    Country(
        "GH",
        "Ghana",
        _AF,
        (
            Network("MTN", "620", "01", _4G),
            Network("Telecel", "620", "02", _4G),
        ),
    ),
    Country(
        "SN",
        "Senegal",
        _AF,
        (
            Network("Orange", "608", "01", _4G),
            Network("Expresso", "608", "03", _4G),
        ),
    ),
    Country(
        "CI",
        "Côte d'Ivoire",
        _AF,
        (
            Network("Orange", "612", "03", _4G),
            Network("MTN", "612", "05", _4G),
        ),
    ),
    Country(
        "MU",
        "Mauritius",
        _AF,
        (
            Network("my.t", "617", "01", _4G),
            Network("Emtel", "617", "10", _4G),
        ),
    ),
    # Americas
    Country(
        "US",
        "United States",
        _AM,
        (
            Network("T-Mobile", "310", "260", _5G),
            Network("AT&T", "310", "410", _5G),
            Network("Verizon", "311", "480", _5G),
        ),
    ),
    Country(
        "CA",
        "Canada",
        _AM,
        (
            Network("Rogers", "302", "720", _5G),
            Network("Bell", "302", "610", _5G),
            Network("Telus", "302", "220", _5G),
        ),
    ),
    Country(
        "MX",
        "Mexico",
        _AM,
        (
            Network("Telcel", "334", "020", _5G),
            Network("AT&T", "334", "050", _5G),
        ),
    ),
    Country(
        "GT",
        "Guatemala",
        _AM,
        (
            Network("Claro", "704", "01", _4G),
            Network("Tigo", "704", "02", _4G),
        ),
    ),
    Country(
        "CR",
        "Costa Rica",
        _AM,
        (
            Network("Kölbi", "712", "01", _4G),
            Network("Claro", "712", "03", _4G),
            Network("Liberty", "712", "04", _4G),
        ),
    ),
    Country(
        "DO",
        "Dominican Republic",
        _AM,
        (
            Network("Altice", "370", "01", _5G),
            Network("Claro", "370", "02", _5G),
        ),
    ),
    Country(
        "CO",
        "Colombia",
        _AM,
        (
            Network("Claro", "732", "101", _4G),
            Network("Movistar", "732", "123", _4G),
            Network("Tigo", "732", "103", _4G),
        ),
    ),
    Country(
        "EC",
        "Ecuador",
        _AM,
        (
            Network("Claro", "740", "01", _4G),
            Network("Movistar", "740", "00", _4G),
        ),
    ),
    Country(
        "PE",
        "Peru",
        _AM,
        (
            Network("Claro", "716", "10", _5G),
            Network("Movistar", "716", "06", _4G),
        ),
    ),
    Country(
        "BR",
        "Brazil",
        _AM,
        (
            Network("Vivo", "724", "06", _5G),
            Network("Claro", "724", "05", _5G),
            Network("TIM", "724", "02", _5G),
        ),
    ),
    Country(
        "AR",
        "Argentina",
        _AM,
        (
            Network("Claro", "722", "310", _5G),
            Network("Movistar", "722", "070", _5G),
        ),
    ),
    Country(
        "CL",
        "Chile",
        _AM,
        (
            Network("Entel", "730", "01", _5G),
            Network("Movistar", "730", "02", _5G),
            Network("Claro", "730", "03", _5G),
        ),
    ),
    Country(
        "UY",
        "Uruguay",
        _AM,
        (
            Network("Antel", "748", "01", _5G),
            Network("Movistar", "748", "07", _4G),
            Network("Claro", "748", "10", _4G),
        ),
    ),
    # Oceania
    Country(
        "AU",
        "Australia",
        _OC,
        (
            Network("Telstra", "505", "01", _5G),
            Network("Optus", "505", "02", _5G),
            Network("Vodafone", "505", "03", _5G),
        ),
    ),
    Country(
        "NZ",
        "New Zealand",
        _OC,
        (
            Network("One NZ", "530", "01", _5G),
            Network("Spark", "530", "05", _5G),
            Network("2degrees", "530", "24", _5G),
        ),
    ),
    Country(
        "FJ",
        "Fiji",
        _OC,
        (
            Network("Vodafone", "542", "01", _4G),
            Network("Digicel", "542", "02", _4G),
        ),
    ),
)

COUNTRIES_BY_CODE: Final[Mapping[str, Country]] = {c.code: c for c in COUNTRIES}


def countries(region: Region | None = None) -> tuple[Country, ...]:
    """Every country, or the countries of one region, in table order."""
    if region is None:
        return COUNTRIES
    return tuple(c for c in COUNTRIES if c.region is region)
