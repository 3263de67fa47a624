"""Standardised eSIM status (spec section 11): raw upstream words → three dimensions → one status.

Every upstream describes an eSIM in its own words, spread over one or more raw fields. We keep
three internal dimensions and derive the single API status from them:

* :class:`LineStatus` — the subscription on the mobile network;
* :class:`ProfileStatus` — the profile as the SM-DP+ / device sees it;
* :class:`PlanStatus` — the data plan (allowance and validity).

Each provider kind has one explicit table from ``(raw field, raw value)`` to the dimensions that
pair tells us (:data:`PROVIDER_TABLES`). Matching is forgiving on purpose, because upstreams are
not consistent even between their own endpoints:

* field names ignore case and punctuation (``profile_status`` = ``profileStatus``), and a dotted
  path falls back to its last segment (``simStatus.planStatus`` → ``planStatus``);
* values ignore case and surrounding space; runs of spaces, ``-`` and ``_`` are equal
  (``Not Active`` = ``NOT_ACTIVE``);
* when two fields set the same dimension, the later lifecycle stage wins (see ``_rank``), since
  upstream states only move forward and a stale field should not undo a terminal one;
* an unknown provider kind, field or value is logged as a warning and leaves its dimension
  ``UNKNOWN``; an empty value counts as "not reported". Nothing here ever raises.

API status derivation (first matching rule wins):

1. profile or line ``DELETED`` → ``DELETED``;
2. line or plan ``CANCELLED`` → ``CANCELLED``;
3. plan ``EXPIRED``, or ``expires_at <= now`` → ``EXPIRED``;
4. seed-004 quirk: line ``NOT_ACTIVE`` with no data left (``used >= total``, total known) →
   ``EXPIRED`` (Airalo-style upstreams report an unused eSIM whose install window lapsed this way);
5. plan ``DEPLETED``, or ``used_bytes >= total_bytes > 0`` → ``DEPLETED``;
6. line ``ACTIVE``, plan ``IN_USE``, or any usage (``used_bytes > 0``) → ``ACTIVE``;
7. otherwise → ``NEW`` — also the answer when nothing at all is known. It is the safe default: it
   claims no terminal state, so nothing is refused locally on a guess (the upstream still checks
   every cancel and top-up itself) and the next refresh can still move it anywhere.

So ``NOT_ACTIVE`` with data left (or unlimited) ends in ``NEW``, as seed 004 lists. A suspended line
has no API word of its own; it reads as ``ACTIVE`` if the eSIM was used, else ``NEW``.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from esimgate.esims.models import EsimStatus

log = logging.getLogger(__name__)
_S = TypeVar("_S", bound=enum.StrEnum)


class LineStatus(enum.StrEnum):
    """The subscription on the mobile network."""

    NOT_ACTIVE = "NOT_ACTIVE"  # never attached: validity has not started
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    CANCELLED = "CANCELLED"  # cancelled before use (refunded)
    DELETED = "DELETED"  # terminated by the upstream (revoked, ICCID recycled)
    UNKNOWN = "UNKNOWN"


class ProfileStatus(enum.StrEnum):
    """The profile as the SM-DP+ / the device sees it."""

    RELEASED = "RELEASED"  # ready to download, not on a device
    DOWNLOADED = "DOWNLOADED"
    INSTALLED = "INSTALLED"
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"
    DELETED = "DELETED"
    UNKNOWN = "UNKNOWN"


class PlanStatus(enum.StrEnum):
    """The data plan: allowance and validity."""

    UNUSED = "UNUSED"
    IN_USE = "IN_USE"
    DEPLETED = "DEPLETED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Dims:
    """What one raw (field, value) pair tells us; ``None`` = says nothing about that dimension."""

    line: LineStatus | None = None
    profile: ProfileStatus | None = None
    plan: PlanStatus | None = None


@dataclass(frozen=True)
class Normalised:
    line: LineStatus
    profile: ProfileStatus
    plan: PlanStatus
    api_status: EsimStatus
    raw: dict[str, str]


L, R, P = LineStatus, ProfileStatus, PlanStatus
Table = Mapping[tuple[str, str], Dims]

# Shorthands for the combinations the tables repeat.
_UNUSED = Dims(plan=P.UNUSED)
_NOT_ACTIVE = Dims(line=L.NOT_ACTIVE)
_IN_SERVICE = Dims(line=L.ACTIVE, plan=P.IN_USE)
_DEPLETED = Dims(plan=P.DEPLETED)
_EXPIRED = Dims(plan=P.EXPIRED)
_CANCELLED = Dims(line=L.CANCELLED, plan=P.CANCELLED)
_NOTHING = Dims()  # a documented word that maps to no dimension: known, so not logged


def _profile_words(field: str, words: Mapping[str, ProfileStatus]) -> dict[tuple[str, str], Dims]:
    return {(field, word): Dims(profile=status) for word, status in words.items()}


# The built-in simulator: its own wire words (adapter._report), one field per dimension.
SIMULATOR: Table = {
    **_profile_words("profileState", {s.name: s for s in R if s is not R.UNKNOWN}),
    ("lineState", "NOT_ACTIVE"): _NOT_ACTIVE,
    ("lineState", "ACTIVE"): Dims(line=L.ACTIVE),
    ("lineState", "SUSPENDED"): Dims(line=L.SUSPENDED),
    ("lineState", "CANCELLED"): Dims(line=L.CANCELLED),
    ("planState", "UNUSED"): _UNUSED,
    ("planState", "IN_USE"): Dims(plan=P.IN_USE),
    ("planState", "DEPLETED"): _DEPLETED,
    ("planState", "EXPIRED"): _EXPIRED,
    ("planState", "CANCELLED"): Dims(plan=P.CANCELLED),
}

# SimplifyTrip GET /products/esim/:iccid: the newest activityLogs[].status (SM-DP+ lifecycle) and
# simStatus.planStatus.
SIMPLIFYTRIP: Table = {
    **_profile_words(
        "status",
        {
            "NOT_DOWNLOADED": R.RELEASED,
            "DOWNLOADED": R.DOWNLOADED,
            "INSTALLED": R.INSTALLED,
            "ENABLED": R.ENABLED,
            "DISABLED": R.DISABLED,
            "DELETED": R.DELETED,
        },
    ),
    ("planStatus", "UNUSED"): _UNUSED,
    ("planStatus", "IN_USE"): _IN_SERVICE,
    ("planStatus", "EXPIRED"): _EXPIRED,
    # Documented without a meaning ("unknown/failed" at best): leave it to usage and expiry.
    ("planStatus", "UNAVAILABLE"): Dims(plan=P.UNKNOWN),
}

# eSIM Access /esim/query: esimStatus (order + line + plan) and smdpStatus (profile).
ESIMACCESS: Table = {
    # Before and during allocation: bought, nothing to use yet.
    ("esimStatus", "CREATE"): _UNUSED,
    ("esimStatus", "PAYING"): _UNUSED,
    ("esimStatus", "PAID"): _UNUSED,
    ("esimStatus", "GETTING_RESOURCE"): _UNUSED,
    ("esimStatus", "GOT_RESOURCE"): Dims(line=L.NOT_ACTIVE, plan=P.UNUSED),
    # IN_USE means validity has started, even if the console calls it "Onboard" with 0 usage.
    ("esimStatus", "IN_USE"): _IN_SERVICE,
    ("esimStatus", "USED_UP"): _DEPLETED,
    ("esimStatus", "UNUSED_EXPIRED"): Dims(line=L.NOT_ACTIVE, plan=P.EXPIRED),
    ("esimStatus", "USED_EXPIRED"): _EXPIRED,
    ("esimStatus", "CANCEL"): _CANCELLED,
    ("esimStatus", "SUSPENDED"): Dims(line=L.SUSPENDED),
    # Revoke closes the eSIM and its plan for good (non-refundable); docs spell it both ways.
    ("esimStatus", "REVOKE"): Dims(line=L.DELETED),
    ("esimStatus", "REVOKED"): Dims(line=L.DELETED),
    **_profile_words(
        "smdpStatus",
        {
            "RELEASED": R.RELEASED,
            "DOWNLOAD": R.DOWNLOADED,
            "INSTALLATION": R.INSTALLED,
            "ENABLED": R.ENABLED,
            "DISABLED": R.DISABLED,
            "DELETED": R.DELETED,
        },
    ),
}

# Airalo GET /sims/{iccid}/usage: one `status` field.
AIRALO: Table = {
    ("status", "NOT_ACTIVE"): Dims(line=L.NOT_ACTIVE, plan=P.UNUSED),  # installed or not, unused
    ("status", "ACTIVE"): _IN_SERVICE,
    ("status", "FINISHED"): _DEPLETED,
    ("status", "EXPIRED"): _EXPIRED,
    ("status", "UNKNOWN"): _NOTHING,  # Airalo's own "don't know": usage and expiry decide
    # The ICCID was taken back by Airalo: terminal, no use, no top-up.
    ("status", "RECYCLED"): Dims(line=L.DELETED),
}

# eSIM Go: the assignment's bundleState (plan) and the eSIM's profileStatus.
ESIMGO: Table = {
    ("bundleState", "processing"): _UNUSED,  # assignment in progress (≤ 10 min)
    ("bundleState", "queued"): _UNUSED,
    ("bundleState", "active"): _IN_SERVICE,
    ("bundleState", "depleted"): _DEPLETED,
    ("bundleState", "expired"): _EXPIRED,
    # Bundle-level revoke/refund: the plan ends, the eSIM itself survives (can take a new bundle).
    ("bundleState", "revoked"): Dims(plan=P.CANCELLED),
    ("bundleState", "lapsed"): Dims(line=L.NOT_ACTIVE, plan=P.EXPIRED),  # expired, never used
    **_profile_words(
        "profileStatus",
        {
            "Released": R.RELEASED,
            "Downloaded": R.DOWNLOADED,
            "Installed": R.INSTALLED,
            "Deactivated": R.DELETED,  # returned/revoked
            # Integrators also see these lower-case words.
            "enabled": R.ENABLED,
            "disabled": R.DISABLED,
            "deleted": R.DELETED,
        },
    ),
    ("profileStatus", "Unavailable"): Dims(profile=R.UNKNOWN),  # needs a reissue; no equivalent
}

# esimfly Business API as an upstream: its standard `status` plus the newer detail fields.
ESIMFLY: Table = {
    ("status", "NEW"): _UNUSED,
    ("status", "PENDING"): _UNUSED,  # async (KDDI-type) order still provisioning
    ("status", "ACTIVE"): _IN_SERVICE,
    ("status", "EXPIRED"): _EXPIRED,
    ("status", "CANCELLED"): _CANCELLED,
    ("status", "DEPLETED"): _DEPLETED,
    ("status", "DELETED"): Dims(profile=R.DELETED),  # "profile removed from device"
    ("esim_status", "New"): _UNUSED,
    ("esim_status", "Not Active"): _NOT_ACTIVE,
    ("esim_status", "Active"): Dims(line=L.ACTIVE),
    ("esim_status", "Installed"): Dims(profile=R.INSTALLED),
    ("esim_status", "Assigned (Not Installed)"): Dims(profile=R.RELEASED),
    ("esim_status", "Disconnected"): Dims(line=L.SUSPENDED),  # after /esims/suspend
    **_profile_words(
        "profile_status",
        {
            "nodownload": R.RELEASED,
            "BPP installation": R.INSTALLED,
            "Enable": R.ENABLED,
            "Disable": R.DISABLED,
            "Delete": R.DELETED,
        },
    ),
    **_profile_words(
        "profile",
        {"Not Installed": R.RELEASED, "Enabled": R.ENABLED, "Disabled": R.DISABLED},
    ),
    # smdp_status vocabulary is undocumented; these are the eSIM Access words it relays (inferred).
    **_profile_words(
        "smdp_status",
        {
            "RELEASED": R.RELEASED,
            "DOWNLOAD": R.DOWNLOADED,
            "INSTALLATION": R.INSTALLED,
            "ENABLED": R.ENABLED,
            "DISABLED": R.DISABLED,
            "DELETED": R.DELETED,
        },
    ),
}

# The provider words of the seed-004 standard mapping table, as one generic `status` field.
# NOT_ACTIVE only says the line never started; rule 4 of the derivation splits it NEW/EXPIRED.
SEED004: Table = {
    ("status", "new"): _UNUSED,
    ("status", "got_resource"): _UNUSED,
    ("status", "onboard"): Dims(profile=R.ENABLED, plan=P.UNUSED),  # installed, not yet used
    ("status", "NOT_ACTIVE"): _NOT_ACTIVE,
    ("status", "active"): _IN_SERVICE,
    ("status", "in_use"): _IN_SERVICE,
    ("status", "expired"): _EXPIRED,
    ("status", "canceled"): _CANCELLED,
    ("status", "cancelled"): _CANCELLED,
    ("status", "cancel"): _CANCELLED,
    ("status", "depleted"): _DEPLETED,
    ("status", "deleted"): Dims(profile=R.DELETED),
}

PROVIDER_TABLES: Mapping[str, Table] = {
    "simulator": SIMULATOR,
    "simplifytrip": SIMPLIFYTRIP,
    "esimaccess": ESIMACCESS,
    "airalo": AIRALO,
    "esimgo": ESIMGO,
    "esimfly": ESIMFLY,
    "seed004": SEED004,
}


def _rank(status: enum.StrEnum) -> int:
    """Declaration order is lifecycle order, so later stages outrank earlier ones when two fields
    disagree about one dimension; anything known beats UNKNOWN."""
    # Not one dict over all three enums: StrEnum members hash as their text, and LineStatus and
    # PlanStatus share words ("CANCELLED") that would collide.
    return -1 if status.name == "UNKNOWN" else list(type(status)).index(status)


_NOT_WORD = re.compile(r"[^0-9a-z]+")
_SEPARATORS = re.compile(r"[\s_-]+")


def _field_key(name: str) -> str:
    return _NOT_WORD.sub("", name.casefold())


def _value_key(value: str) -> str:
    return _SEPARATORS.sub("_", value.strip().casefold())


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A table keyed by normalised (field, value), plus the fields it knows."""

    pairs: dict[tuple[str, str], Dims]
    fields: frozenset[str]


def _compile(table: Table) -> _Compiled:
    pairs = {(_field_key(f), _value_key(v)): dims for (f, v), dims in table.items()}
    return _Compiled(pairs, frozenset(f for f, _ in pairs))


_COMPILED: dict[str, _Compiled] = {kind: _compile(table) for kind, table in PROVIDER_TABLES.items()}


def _short(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _lookup(provider: str, table: _Compiled, field: str, value: str) -> Dims | None:
    """The dimensions one raw pair sets; ``None`` (and a warning) when the table doesn't know it."""
    for key in (_field_key(field), _field_key(field.rsplit(".", 1)[-1])):
        if key in table.fields:
            dims = table.pairs.get((key, _value_key(value)))
            if dims is None:
                log.warning(
                    "unknown status value from %s: field=%s value=%s",
                    provider,
                    _short(field),
                    _short(value),
                )
            return dims
    log.warning(
        "unmapped status field from %s: field=%s value=%s", provider, _short(field), _short(value)
    )
    return None


def _later(current: _S, candidate: _S | None) -> _S:
    if candidate is None or _rank(candidate) <= _rank(current):
        return current
    return candidate


def _aware(moment: datetime) -> datetime:
    # A naive datetime here is UTC by the project's convention; comparing naive with aware raises.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def derive(
    line: LineStatus,
    profile: ProfileStatus,
    plan: PlanStatus,
    *,
    used_bytes: int,
    total_bytes: int | None,
    expires_at: datetime | None,
    now: datetime,
) -> EsimStatus:
    """The API status from the three dimensions and the usage facts (rules in the module doc)."""
    used = max(used_bytes, 0)
    no_data_left = total_bytes is not None and used >= total_bytes
    if profile is R.DELETED or line is L.DELETED:
        return EsimStatus.DELETED
    if line is L.CANCELLED or plan is P.CANCELLED:
        return EsimStatus.CANCELLED
    if plan is P.EXPIRED or (expires_at is not None and _aware(expires_at) <= _aware(now)):
        return EsimStatus.EXPIRED
    if line is L.NOT_ACTIVE and no_data_left:
        return EsimStatus.EXPIRED
    if plan is P.DEPLETED or (no_data_left and total_bytes is not None and total_bytes > 0):
        return EsimStatus.DEPLETED
    if line is L.ACTIVE or plan is P.IN_USE or used > 0:
        return EsimStatus.ACTIVE
    return EsimStatus.NEW


def normalise(
    provider_kind: str,
    raw: Mapping[str, str],
    *,
    used_bytes: int,
    total_bytes: int | None,
    expires_at: datetime | None,
    now: datetime,
) -> Normalised:
    """Map an upstream's raw status fields to our dimensions and API status. Never raises."""
    # Upstream JSON may smuggle in numbers or nulls despite the type; keep them as text.
    copy = {str(k): "" if v is None else str(v) for k, v in raw.items()}
    table = _COMPILED.get(_field_key(provider_kind))
    if table is None:
        log.warning(
            "unknown provider kind %s: status left to usage and expiry", _short(provider_kind)
        )
    line, profile, plan = L.UNKNOWN, R.UNKNOWN, P.UNKNOWN
    for field, value in sorted(copy.items()):  # sorted: the same input always logs the same way
        if table is None or not value.strip():
            continue
        dims = _lookup(provider_kind, table, field, value)
        if dims is not None:
            line = _later(line, dims.line)
            profile = _later(profile, dims.profile)
            plan = _later(plan, dims.plan)
    status = derive(
        line,
        profile,
        plan,
        used_bytes=used_bytes,
        total_bytes=total_bytes,
        expires_at=expires_at,
        now=now,
    )
    return Normalised(line=line, profile=profile, plan=plan, api_status=status, raw=copy)


def _parse_profile(value: ProfileStatus | str | None) -> ProfileStatus:
    # Callers pass Esim.profile_status straight from the database: maybe None, maybe stale text.
    try:
        return ProfileStatus(value.upper()) if value is not None else R.UNKNOWN
    except ValueError:
        return R.UNKNOWN


_NOT_ON_DEVICE = frozenset({R.RELEASED, R.UNKNOWN})

_V3_TERMINAL: dict[EsimStatus, str] = {
    EsimStatus.DEPLETED: "consumed",
    EsimStatus.EXPIRED: "expired",
    EsimStatus.CANCELLED: "cancelled",
    # v3 has no "deleted": a deleted profile can never be used again, which v3 clients already
    # handle as "cancelled".
    EsimStatus.DELETED: "cancelled",
}


def v3_status(
    api_status: EsimStatus | str, profile: ProfileStatus | str | None, used_bytes: int
) -> str:
    """The status word of the seed-000 v3 dialect (spec section 13)."""
    status = EsimStatus(api_status)
    if status in _V3_TERMINAL:
        return _V3_TERMINAL[status]
    # Any usage means in service, even if the stored status lags behind a refresh.
    if status is EsimStatus.ACTIVE or used_bytes > 0:
        return "active"
    # NEW splits on the device: "ready" to install, or "inactive" (installed, not yet used).
    return "ready" if _parse_profile(profile) in _NOT_ON_DEVICE else "inactive"
