"""Country names and codes → ISO 3166-1 alpha-2, for upstreams' free-text country fields.

eSIM Go's ``GET /esims/{iccid}/location`` documents ``country`` only as a string: live answers
may carry an alpha-2 code, an alpha-3 code or a name (its catalogue spells names its own way, e.g.
``"Korea- Republic of"``, ``"Aaland Islands"``). :func:`country_code` accepts all of them.

The table is ISO 3166-1 from pycountry (the short, common and official name of each entry),
plus the aliases and old names integrators meet. Matching ignores case, accents and punctuation.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import pycountry

_ALIASES: Final[dict[str, str]] = {
    "UK": "GB",
    "Great Britain": "GB",
    "Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Northern Ireland": "GB",
    "USA": "US",
    "United States of America": "US",
    "Russia": "RU",
    "Czech Republic": "CZ",
    "Turkey": "TR",
    "Macau": "MO",
    "Macao": "MO",
    "Hong Kong": "HK",
    "Vatican": "VA",
    "Vatican City": "VA",
    "Holy See": "VA",
    "Palestine": "PS",
    "Brunei": "BN",
    "Ivory Coast": "CI",
    "Cape Verde": "CV",
    "Swaziland": "SZ",
    "Macedonia": "MK",
    "Macedonia, the former Yugoslav Republic of": "MK",
    "Burma": "MM",
    "Holland": "NL",
    "Korea": "KR",
    "Republic of Korea": "KR",
    "Aaland Islands": "AX",
    "Aland Islands": "AX",
    "Congo, the Democratic Republic of the": "CD",
    "DR Congo": "CD",
    "DRC": "CD",
    "Republic of the Congo": "CG",
    "Micronesia": "FM",
    "Faroe Islands": "FO",
    "Falkland Islands": "FK",
    "Saint Martin": "MF",
    "Sint Maarten": "SX",
    "Curacao": "CW",
    "Reunion": "RE",
    "East Timor": "TL",
    "UAE": "AE",
    "Emirates": "AE",
    "Kosovo": "XK",
    "XK": "XK",
    "Virgin Islands, British": "VG",
    "Virgin Islands, U.S.": "VI",
    "US Virgin Islands": "VI",
    "British Virgin Islands": "VG",
}

_NOT_ALNUM: Final = re.compile(r"[^0-9a-z]+")


def _key(text: str) -> str:
    """Case, accents, punctuation and a leading "the" ignored: "Korea- Republic of" and
    "Korea, Republic of" are one key, as are "Réunion" and "reunion"."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    words = _NOT_ALNUM.sub(" ", plain).split()
    if words and words[0] == "the" and len(words) > 1:
        words = words[1:]
    return " ".join(words)


def _build() -> dict[str, str]:
    table: dict[str, str] = {}
    for country in pycountry.countries:
        alpha2: str = country.alpha_2
        names = [getattr(country, a, None) for a in ("name", "common_name", "official_name")]
        for name in (alpha2, country.alpha_3, *names):
            if name:
                table.setdefault(_key(name), alpha2)
    for name, alpha2 in _ALIASES.items():
        table[_key(name)] = alpha2
    return table


_TABLE: Final = _build()


def country_code(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 (upper case) for a code or a name; ``None`` when it names no country
    this table knows (callers keep the raw text if they need it, and never guess)."""
    if not value or not value.strip():
        return None
    return _TABLE.get(_key(value))
