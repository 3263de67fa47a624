"""Standardised status: every provider's vocabulary, the seed-004 table, never-raise properties."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esimgate.esims.models import EsimStatus
from esimgate.esims.status import (
    _COMPILED,
    PROVIDER_TABLES,
    LineStatus,
    Normalised,
    PlanStatus,
    ProfileStatus,
    normalise,
    v3_status,
)
from esimgate.esims.units import GIB, MIB, usage_percentage
from esimgate.providers.simulator.models import LineState, PlanState, ProfileState

NOW = datetime(2026, 4, 22, 12, 0, tzinfo=UTC)
NEW, ACTIVE, EXPIRED = EsimStatus.NEW, EsimStatus.ACTIVE, EsimStatus.EXPIRED
CANCELLED, DEPLETED, DELETED = EsimStatus.CANCELLED, EsimStatus.DEPLETED, EsimStatus.DELETED


def status(
    kind: str,
    raw: dict[str, str],
    *,
    used: int = 0,
    total: int | None = GIB,
    expires_at: datetime | None = None,
) -> EsimStatus:
    result = normalise(
        kind, raw, used_bytes=used, total_bytes=total, expires_at=expires_at, now=NOW
    )
    return result.api_status


def words(field: str, expected: dict[EsimStatus, list[str]]) -> dict[tuple[str, str], EsimStatus]:
    """Expected table rows for one raw field, grouped by the status each word should give."""
    return {(field, word): api for api, ws in expected.items() for word in ws}


# What each table entry gives on its own: an eSIM with 1 GB, nothing used, no expiry known.
# Written from /work/shared/providers/*.md, not from the module's tables.
EXPECTED: dict[str, dict[tuple[str, str], EsimStatus]] = {
    "simulator": {
        **words(
            "profileState",
            {
                NEW: ["RELEASED", "DOWNLOADED", "INSTALLED", "ENABLED", "DISABLED"],
                DELETED: ["DELETED"],
            },
        ),
        **words(
            "lineState",
            {NEW: ["NOT_ACTIVE", "SUSPENDED"], ACTIVE: ["ACTIVE"], CANCELLED: ["CANCELLED"]},
        ),
        **words(
            "planState",
            {
                NEW: ["UNUSED"],
                ACTIVE: ["IN_USE"],
                DEPLETED: ["DEPLETED"],
                EXPIRED: ["EXPIRED"],
                CANCELLED: ["CANCELLED"],
            },
        ),
    },
    "simplifytrip": {
        **words(
            "status",
            {
                NEW: ["NOT_DOWNLOADED", "DOWNLOADED", "INSTALLED", "ENABLED", "DISABLED"],
                DELETED: ["DELETED"],
            },
        ),
        **words(
            "planStatus",
            {NEW: ["UNUSED", "UNAVAILABLE"], ACTIVE: ["IN_USE"], EXPIRED: ["EXPIRED"]},
        ),
    },
    "esimaccess": {
        **words(
            "esimStatus",
            {
                NEW: ["CREATE", "PAYING", "PAID", "GETTING_RESOURCE", "GOT_RESOURCE", "SUSPENDED"],
                ACTIVE: ["IN_USE"],
                DEPLETED: ["USED_UP"],
                EXPIRED: ["USED_EXPIRED", "UNUSED_EXPIRED"],
                CANCELLED: ["CANCEL"],
                DELETED: ["REVOKE", "REVOKED"],
            },
        ),
        **words(
            "smdpStatus",
            {
                NEW: ["RELEASED", "DOWNLOAD", "INSTALLATION", "ENABLED", "DISABLED"],
                DELETED: ["DELETED"],
            },
        ),
    },
    "airalo": words(
        "status",
        {
            NEW: ["NOT_ACTIVE", "UNKNOWN"],
            ACTIVE: ["ACTIVE"],
            DEPLETED: ["FINISHED"],
            EXPIRED: ["EXPIRED"],
            DELETED: ["RECYCLED"],
        },
    ),
    "esimgo": {
        **words(
            "bundleState",
            {
                NEW: ["processing", "queued"],
                ACTIVE: ["active"],
                DEPLETED: ["depleted"],
                EXPIRED: ["expired", "lapsed"],
                CANCELLED: ["revoked"],
            },
        ),
        **words(
            "profileStatus",
            {
                NEW: ["Released", "Downloaded", "Installed", "Unavailable", "enabled", "disabled"],
                DELETED: ["Deactivated", "deleted"],
            },
        ),
    },
    "esimfly": {
        **words(
            "status",
            {
                NEW: ["NEW", "PENDING"],
                ACTIVE: ["ACTIVE"],
                EXPIRED: ["EXPIRED"],
                CANCELLED: ["CANCELLED"],
                DEPLETED: ["DEPLETED"],
                DELETED: ["DELETED"],
            },
        ),
        **words(
            "esim_status",
            {
                NEW: ["New", "Not Active", "Installed", "Assigned (Not Installed)", "Disconnected"],
                ACTIVE: ["Active"],
            },
        ),
        **words(
            "profile_status",
            {NEW: ["nodownload", "BPP installation", "Enable", "Disable"], DELETED: ["Delete"]},
        ),
        **words("profile", {NEW: ["Not Installed", "Enabled", "Disabled"]}),
        **words(
            "smdp_status",
            {
                NEW: ["RELEASED", "DOWNLOAD", "INSTALLATION", "ENABLED", "DISABLED"],
                DELETED: ["DELETED"],
            },
        ),
    },
    "seed004": words(
        "status",
        {
            NEW: ["new", "got_resource", "onboard", "NOT_ACTIVE"],
            ACTIVE: ["active", "in_use"],
            EXPIRED: ["expired"],
            CANCELLED: ["canceled", "cancelled", "cancel"],
            DEPLETED: ["depleted"],
            DELETED: ["deleted"],
        },
    ),
}

ENTRIES = [
    pytest.param(kind, field, value, api, id=f"{kind}-{field}-{value}")
    for kind, table in EXPECTED.items()
    for (field, value), api in table.items()
]


def test_every_table_entry_has_an_expected_status() -> None:
    assert set(EXPECTED) == set(PROVIDER_TABLES)
    for kind, table in PROVIDER_TABLES.items():
        assert set(table) == set(EXPECTED[kind]), kind
        # No two spellings may collapse onto one key once case and separators are ignored.
        assert len(_COMPILED[kind].pairs) == len(table), kind


@pytest.mark.parametrize(("kind", "field", "value", "expected"), ENTRIES)
def test_table_entry_gives_intended_status(
    kind: str, field: str, value: str, expected: EsimStatus, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="esimgate.esims.status"):
        # Upstreams are not consistent about case or padding: all spellings must agree.
        for spelling in (value, value.upper(), value.lower(), f"  {value} "):
            assert status(kind, {field: spelling}) == expected, spelling
    assert caplog.records == []  # documented words are never "unknown"


# --- seed 004 (spec section 11), row by row ------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "used", "total", "expected"),
    [
        ("new", 0, GIB, NEW),
        ("got_resource", 0, GIB, NEW),
        ("onboard", 0, GIB, NEW),
        ("NOT_ACTIVE", 0, GIB, NEW),  # with data left
        ("NOT_ACTIVE", 0, None, NEW),  # unlimited: always data left
        ("active", 0, GIB, ACTIVE),
        ("in_use", 0, GIB, ACTIVE),
        ("expired", 0, GIB, EXPIRED),
        ("NOT_ACTIVE", GIB, GIB, EXPIRED),  # without data
        ("NOT_ACTIVE", 0, 0, EXPIRED),  # without data: nothing was ever there
        ("canceled", 0, GIB, CANCELLED),
        ("cancelled", 0, GIB, CANCELLED),
        ("cancel", 0, GIB, CANCELLED),
        ("depleted", GIB, GIB, DEPLETED),
        ("deleted", 0, GIB, DELETED),
    ],
)
def test_seed004_rows(word: str, used: int, total: int | None, expected: EsimStatus) -> None:
    assert status("seed004", {"status": word}, used=used, total=total) == expected


# --- combined states as the upstreams send them ----------------------------------------------


@pytest.mark.parametrize(
    ("profile", "line", "plan", "used", "expected"),
    [
        # The simulator's lifecycle: bought, installed, attached, used up, expired, cancelled…
        ("RELEASED", "NOT_ACTIVE", "UNUSED", 0, NEW),
        ("ENABLED", "NOT_ACTIVE", "UNUSED", 0, NEW),
        ("ENABLED", "ACTIVE", "IN_USE", 0, ACTIVE),
        ("ENABLED", "ACTIVE", "IN_USE", 300 * MIB, ACTIVE),
        ("ENABLED", "ACTIVE", "DEPLETED", GIB, DEPLETED),
        ("ENABLED", "ACTIVE", "EXPIRED", 300 * MIB, EXPIRED),
        ("RELEASED", "NOT_ACTIVE", "EXPIRED", 0, EXPIRED),
        ("RELEASED", "CANCELLED", "CANCELLED", 0, CANCELLED),
        ("DELETED", "ACTIVE", "IN_USE", 300 * MIB, DELETED),
        ("ENABLED", "SUSPENDED", "IN_USE", 300 * MIB, ACTIVE),
    ],
)
def test_simulator_states(
    profile: str, line: str, plan: str, used: int, expected: EsimStatus
) -> None:
    raw = {"profileState": profile, "lineState": line, "planState": plan}
    assert status("simulator", raw, used=used) == expected


def test_every_simulator_state_is_mapped(caplog: pytest.LogCaptureFixture) -> None:
    # The simulator adapter sends its enum values upper-cased; none may fall through as unknown.
    with caplog.at_level(logging.WARNING, logger="esimgate.esims.status"):
        for profile, line, plan in itertools.product(ProfileState, LineState, PlanState):
            raw = {
                "profileState": profile.upper(),
                "lineState": line.upper(),
                "planState": plan.upper(),
            }
            result = normalise(
                "simulator", raw, used_bytes=0, total_bytes=GIB, expires_at=None, now=NOW
            )
            assert result.line is not LineStatus.UNKNOWN
            assert result.profile is not ProfileStatus.UNKNOWN
            assert result.plan is not PlanStatus.UNKNOWN
    assert caplog.records == []


@pytest.mark.parametrize(
    ("esim_status", "smdp_status", "used", "expected"),
    [
        # eSIM Access console states (esimaccess.md §5.3) plus cancel and revoke.
        ("GOT_RESOURCE", "RELEASED", 0, NEW),  # New
        ("GOT_RESOURCE", "ENABLED", 0, NEW),  # Onboard, validity not started
        ("IN_USE", "ENABLED", 0, ACTIVE),  # Onboard, validity running
        ("IN_USE", "DISABLED", 200 * MIB, ACTIVE),  # In Use
        ("USED_UP", "ENABLED", GIB, DEPLETED),  # Depleted
        ("USED_UP", "DELETED", GIB, DELETED),  # Deleted
        ("IN_USE", "DELETED", 5 * MIB, DELETED),  # Deleted
        ("CANCEL", "RELEASED", 0, CANCELLED),
        ("REVOKED", "ENABLED", 5 * MIB, DELETED),
        ("UNUSED_EXPIRED", "RELEASED", 0, EXPIRED),
        ("USED_EXPIRED", "ENABLED", 5 * MIB, EXPIRED),
    ],
)
def test_esimaccess_combined_states(
    esim_status: str, smdp_status: str, used: int, expected: EsimStatus
) -> None:
    raw = {"esimStatus": esim_status, "smdpStatus": smdp_status}
    assert status("esimaccess", raw, used=used) == expected


@pytest.mark.parametrize(
    ("activity", "plan", "used", "expected"),
    [
        ("NOT_DOWNLOADED", "UNUSED", 0, NEW),
        ("ENABLED", "UNUSED", 0, NEW),
        ("ENABLED", "IN_USE", 10 * MIB, ACTIVE),
        ("DISABLED", "EXPIRED", 10 * MIB, EXPIRED),
        ("DELETED", "IN_USE", 10 * MIB, DELETED),
    ],
)
def test_simplifytrip_nested_fields(
    activity: str, plan: str, used: int, expected: EsimStatus
) -> None:
    # Adapters may keep the JSON path; the last segment is the field name.
    raw = {"activityLogs.status": activity, "simStatus.planStatus": plan}
    assert status("simplifytrip", raw, used=used) == expected


def test_airalo_not_active_splits_on_data_left() -> None:
    assert status("airalo", {"status": "NOT_ACTIVE"}, used=0, total=2 * GIB) == NEW
    assert status("airalo", {"status": "NOT_ACTIVE"}, used=2 * GIB, total=2 * GIB) == EXPIRED
    assert status("airalo", {"status": "NOT_ACTIVE"}, used=0, total=None) == NEW


def test_later_lifecycle_stage_wins_between_fields() -> None:
    raw = {"status": "ACTIVE", "esim_status": "Not Active", "profileStatus": "Enable"}
    result = normalise("esimfly", raw, used_bytes=0, total_bytes=GIB, expires_at=None, now=NOW)
    assert result.line is LineStatus.ACTIVE
    assert result.profile is ProfileStatus.ENABLED  # profileStatus = profile_status
    assert result.api_status is ACTIVE


def test_provider_kind_spelling_is_forgiving() -> None:
    assert status("eSIM Access", {"esimStatus": "IN_USE"}) == ACTIVE
    assert status("esim-go", {"bundleState": "depleted"}) == DEPLETED


def test_usage_and_expiry_decide_when_words_do_not() -> None:
    assert status("simulator", {}, used=1) == ACTIVE
    assert status("simulator", {}, used=GIB, total=GIB) == DEPLETED
    assert status("simulator", {}, used=2 * GIB, total=GIB) == DEPLETED  # overuse
    assert status("simulator", {}, used=0, total=0) == NEW  # zero total is not "depleted"
    assert status("simulator", {}, expires_at=NOW) == EXPIRED  # expiry is inclusive
    assert status("simulator", {}, expires_at=NOW + timedelta(seconds=1)) == NEW
    naive = (NOW - timedelta(days=1)).replace(tzinfo=None)  # naive means UTC; never a TypeError
    assert status("simulator", {}, expires_at=naive) == EXPIRED


def test_result_is_frozen_and_keeps_a_copy_of_raw() -> None:
    raw = {"planState": "IN_USE", "extra": "x"}
    result = normalise("simulator", raw, used_bytes=0, total_bytes=GIB, expires_at=None, now=NOW)
    raw["planState"] = "EXPIRED"
    assert result.raw == {"planState": "IN_USE", "extra": "x"}
    assert type(result.raw) is dict
    with pytest.raises(AttributeError):
        result.api_status = EXPIRED  # type: ignore[misc]


# --- logging of unknown words ----------------------------------------------------------------


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_unknown_value_is_logged_and_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="esimgate.esims.status"):
        result = normalise(
            "esimaccess",
            {"esimStatus": "TELEPORTED", "smdpStatus": "ENABLED"},
            used_bytes=0,
            total_bytes=GIB,
            expires_at=None,
            now=NOW,
        )
    assert result.api_status is NEW
    assert (result.line, result.plan) == (LineStatus.UNKNOWN, PlanStatus.UNKNOWN)
    assert result.profile is ProfileStatus.ENABLED
    [message] = warnings_of(caplog)
    assert "esimaccess" in message and "'esimStatus'" in message and "'TELEPORTED'" in message


def test_unknown_field_and_provider_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="esimgate.esims.status"):
        assert status("airalo", {"colour": "blue"}) == NEW
        assert status("mystery-telecom", {"status": "active"}) == NEW
    messages = warnings_of(caplog)
    assert any("airalo" in m and "'colour'" in m and "'blue'" in m for m in messages)
    assert any("mystery-telecom" in m for m in messages)


def test_empty_value_is_not_reported_nor_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="esimgate.esims.status"):
        assert status("esimaccess", {"esimStatus": "", "smdpStatus": "  "}) == NEW
    assert warnings_of(caplog) == []


def test_log_lines_stay_short(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="esimgate.esims.status"):
        status("airalo", {"status": "x" * 10_000})
    [message] = warnings_of(caplog)
    assert len(message) < 300


# --- properties ------------------------------------------------------------------------------

KINDS = st.sampled_from(sorted(PROVIDER_TABLES)) | st.text()
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
USED = st.integers(min_value=-(2**20), max_value=2**50)
TOTALS = st.none() | st.integers(min_value=-(2**20), max_value=2**50)


def known_raw(kind: str) -> st.SearchStrategy[dict[str, str]]:
    """Raw mappings made of one provider's documented (field, value) pairs."""
    entries = sorted(EXPECTED[kind])
    return st.lists(st.sampled_from(entries), max_size=4).map(dict)


@given(
    kind=KINDS,
    raw=st.dictionaries(st.text(), st.text(), max_size=6),
    used=USED,
    total=TOTALS,
    expires_at=st.none() | MOMENTS | st.datetimes(),  # naive ones too
    now=MOMENTS,
)
def test_normalise_never_raises(
    kind: str,
    raw: dict[str, str],
    used: int,
    total: int | None,
    expires_at: datetime | None,
    now: datetime,
) -> None:
    result = normalise(
        kind, raw, used_bytes=used, total_bytes=total, expires_at=expires_at, now=now
    )
    assert isinstance(result, Normalised)
    assert result.api_status in set(EsimStatus)
    assert isinstance(result.line, LineStatus)
    assert isinstance(result.profile, ProfileStatus)
    assert isinstance(result.plan, PlanStatus)
    assert result.raw == raw
    assert 0 <= usage_percentage(used, total) <= 100


@given(
    data=st.data(),
    used=USED,
    total=TOTALS,
    now=MOMENTS,
    ago=st.timedeltas(min_value=timedelta(), max_value=timedelta(days=36_500)),
)
def test_past_expiry_wins_over_new_and_active(
    data: st.DataObject, used: int, total: int | None, now: datetime, ago: timedelta
) -> None:
    kind = data.draw(st.sampled_from(sorted(EXPECTED)))
    raw = data.draw(known_raw(kind))

    def at(expires_at: datetime | None) -> EsimStatus:
        return normalise(
            kind, raw, used_bytes=used, total_bytes=total, expires_at=expires_at, now=now
        ).api_status

    live, expired = at(None), at(now - ago)
    # Only deletion and cancellation outrank an expiry date (a depleted plan also expires).
    assert expired is (live if live in (DELETED, CANCELLED) else EXPIRED)


@given(kind=st.text().map(lambda text: f"x-{text}"), raw=st.dictionaries(st.text(), st.text()))
def test_unknown_everything_is_new(kind: str, raw: dict[str, str]) -> None:
    # "x-…" is never a known kind, so no word is understood: the safe default applies.
    result = normalise(kind, raw, used_bytes=0, total_bytes=None, expires_at=None, now=NOW)
    assert result.api_status is NEW


@given(used=USED, total=TOTALS)
def test_usage_percentage_is_sane(used: int, total: int | None) -> None:
    percentage = usage_percentage(used, total)
    assert 0 <= percentage <= 100
    if total is None or total <= 0:
        assert percentage == 0
    elif used >= total:
        assert percentage == 100


# --- the seed-000 v3 dialect -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "profile", "used", "word"),
    [
        (NEW, ProfileStatus.RELEASED, 0, "ready"),
        (NEW, None, 0, "ready"),
        (NEW, "UNKNOWN", 0, "ready"),
        (NEW, ProfileStatus.INSTALLED, 0, "inactive"),
        (NEW, "enabled", 0, "inactive"),  # stored text, any case
        (NEW, ProfileStatus.DISABLED, 0, "inactive"),
        (ACTIVE, ProfileStatus.ENABLED, 0, "active"),
        (ACTIVE, ProfileStatus.ENABLED, 5 * MIB, "active"),
        (NEW, ProfileStatus.ENABLED, 5 * MIB, "active"),  # stored status lagging behind usage
        (DEPLETED, ProfileStatus.ENABLED, GIB, "consumed"),
        (EXPIRED, ProfileStatus.ENABLED, 0, "expired"),
        (CANCELLED, ProfileStatus.RELEASED, 0, "cancelled"),
        (DELETED, ProfileStatus.DELETED, 5 * MIB, "cancelled"),
        ("ACTIVE", "ENABLED", 1, "active"),  # plain stored strings work too
    ],
)
def test_v3_status(
    api: EsimStatus | str, profile: ProfileStatus | str | None, used: int, word: str
) -> None:
    assert v3_status(api, profile, used) == word
