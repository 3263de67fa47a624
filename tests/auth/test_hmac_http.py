"""HMAC authentication through HTTP against GET /balance: tampering, the timestamp window, every
error code, malformed headers, replay, concurrent copies, and a flood of bad signatures."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import update

from esimgate.auth.models import ApiKey
from esimgate.clock import FrozenClock
from esimgate.runtime import Runtime
from tests.auth.conftest import ClientFrom
from tests.auth.helpers import (
    BALANCE,
    WINDOW_MS,
    OverlappingGate,
    RacyRequestIdGate,
    bucket_count,
    describe,
    expect_client_error,
    expect_error,
    expect_ok,
    gather_responses,
    get_balance,
    hand_sign,
    key_bucket,
    next_hour,
    now_ms,
    remaining,
    request_id_used,
    revoke,
    seconds_until,
    set_account_status,
    signed_headers,
    use_gate,
)
from tests.conftest import MakeAccount
from tests.support import Credentials

HEADER_NAMES = ("RT-AccessCode", "RT-RequestID", "RT-Timestamp", "RT-Signature")
VICTIM_IP = "198.51.100.9"  # the `client` fixture connects from 203.0.113.7

# --- tampering: a property test ------------------------------------------------------------

# Bytes a header value may carry without being whitespace or a control character (the
# malformed-header tests below cover those): visible ASCII and obs-text.
HEADER_ALPHABET = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
BODY_ALPHABET = bytes(range(256))
FIELDS = ("body", "timestamp", "request_id", "access_code", "signature")
LIMIT = 10**6  # the key's hourly limit in the property test: never the constraint


@dataclass(frozen=True)
class Edit:
    """Change exactly one byte of one signed field: replace it, insert one, or delete one."""

    field: str
    op: str
    position: int
    choice: int

    def apply(self, value: bytes) -> bytes:
        alphabet = BODY_ALPHABET if self.field == "body" else HEADER_ALPHABET
        if self.op == "insert":
            at = self.position % (len(value) + 1)
            return value[:at] + bytes([alphabet[self.choice % len(alphabet)]]) + value[at:]
        at = self.position % len(value)
        if self.op == "delete":
            return value[:at] + value[at + 1 :]
        original = value[at : at + 1]
        # The signature is compared case-insensitively, so a case change is no change there.
        fold = self.field == "signature"
        candidates = [
            c
            for c in alphabet
            if (bytes([c]).lower() != original.lower() if fold else bytes([c]) != original)
        ]
        return value[:at] + bytes([candidates[self.choice % len(candidates)]]) + value[at + 1 :]


edits = st.builds(
    Edit,
    field=st.sampled_from(FIELDS),
    op=st.sampled_from(("replace", "insert", "delete")),
    position=st.integers(min_value=0, max_value=10_000),
    choice=st.integers(min_value=0, max_value=1_000),
)


@pytest.fixture
def tally() -> dict[str, int]:
    return {}


@pytest.mark.parametrize(
    "settings_overrides",
    [{"auth_failures_per_ip_per_hour": 10**9, "rate_limit_per_hour": LIMIT}],
)
@hypothesis_settings(
    max_examples=1000,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the shared tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edit=edits, body=st.binary(min_size=1, max_size=48))
async def test_any_one_byte_change_is_refused_without_side_effects(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    runtime: Runtime,
    tally: dict[str, int],
    edit: Edit,
    body: bytes,
) -> None:
    genuine = signed_headers(creds, now_ms(clock), body)
    fields = {
        "body": body,
        "timestamp": genuine["RT-Timestamp"].encode(),
        "request_id": genuine["RT-RequestID"].encode(),
        "access_code": genuine["RT-AccessCode"].encode(),
        "signature": genuine["RT-Signature"].encode(),
    }
    fields[edit.field] = edit.apply(fields[edit.field])
    tampered = [
        (b"RT-AccessCode", fields["access_code"]),
        (b"RT-RequestID", fields["request_id"]),
        (b"RT-Timestamp", fields["timestamp"]),
        (b"RT-Signature", fields["signature"]),
    ]

    # Requests counted for the key so far: read once, then carried from example to example
    # (re-read after an example that did not finish).
    before = tally.pop("used", None)
    if before is None:
        before = await bucket_count(runtime, await key_bucket(runtime, creds.access_code))
    response = await client.request("GET", BALANCE, headers=tampered, content=fields["body"])
    code = "INVALID_API_KEY" if edit.field == "access_code" else "INVALID_SIGNATURE"
    expect_error(response, 401, code)
    assert "X-RateLimit-Remaining" not in response.headers, describe(response)
    if edit.field in ("request_id", "access_code"):
        # The tampered request did not claim the (access code, request id) it carried ...
        assert not await request_id_used(
            runtime.gate,
            fields["access_code"].decode("latin-1"),
            fields["request_id"].decode("latin-1"),
        ), f"{edit}: the tampered request consumed its request id"

    # ... nor the genuine one's, which is admitted, and counted as the only request since
    # `before`: the tampered one spent no quota.
    response = await get_balance(client, genuine, body)
    expect_ok(response)
    assert remaining(response) == LIMIT - before - 1, f"{edit}: {describe(response)}"
    tally["used"] = before + 1


# --- the timestamp window ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset_ms", "admitted"),
    [
        (0, True),
        (-(WINDOW_MS - 1), True),
        (WINDOW_MS - 1, True),
        (-(WINDOW_MS + 1), False),
        (WINDOW_MS + 1, False),
        (-24 * 3600 * 1000, False),
        (24 * 3600 * 1000, False),
    ],
)
async def test_timestamp_window_edges(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    offset_ms: int,
    admitted: bool,
) -> None:
    headers = signed_headers(creds, now_ms(clock) + offset_ms)
    response = await get_balance(client, headers)
    if admitted:
        expect_ok(response)
    else:
        expect_error(response, 401, "INVALID_TIMESTAMP")


@pytest.mark.parametrize(
    ("elapsed_ms", "admitted"),
    [(WINDOW_MS - 1, True), (WINDOW_MS + 1, False)],
)
async def test_timestamp_window_as_the_server_clock_moves(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    elapsed_ms: int,
    admitted: bool,
) -> None:
    signed_at = now_ms(clock)
    late = signed_headers(creds, signed_at)
    early = signed_headers(creds, signed_at + 2 * elapsed_ms)  # the client's clock runs ahead
    clock.advance(milliseconds=elapsed_ms)
    for headers in (late, early):
        response = await get_balance(client, headers)
        if admitted:
            expect_ok(response)
        else:
            expect_error(response, 401, "INVALID_TIMESTAMP")


async def test_a_stale_request_does_not_consume_its_request_id(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> None:
    request_id = str(uuid.uuid4())
    stale = signed_headers(creds, now_ms(clock) - WINDOW_MS - 1, request_id=request_id)
    expect_error(await get_balance(client, stale), 401, "INVALID_TIMESTAMP")
    fresh = signed_headers(creds, now_ms(clock), request_id=request_id)
    response = await get_balance(client, fresh)
    expect_ok(response)
    assert remaining(response) == 999, describe(response)  # the stale one spent nothing


MALFORMED_TIMESTAMPS: dict[str, Callable[[int], str]] = {
    "12-digits": lambda now: str(now)[:-1],
    "14-digits": lambda now: f"{now}0",
    "12-digits-truncated-front": lambda now: str(now)[1:],
    "13-digits-leading-zero": lambda now: "0" + str(now)[:-1],
    "plus-sign": lambda now: f"+{now}",
    "minus-sign": lambda now: f"-{now}",
    "plus-sign-13-chars": lambda now: "+" + str(now)[1:],
    "minus-sign-13-chars": lambda now: "-" + str(now)[1:],
    "seconds": lambda now: str(now // 1000),
    "letter-at-end": lambda now: str(now)[:-1] + "a",
    "letter-inside": lambda now: str(now)[:6] + "x" + str(now)[7:],
    "decimal-seconds": lambda now: f"{now / 1000:.3f}",
    "decimal-ms": lambda now: f"{now}.0",
    "exponent": lambda now: f"{float(now):e}",
    "hex": hex,
    "leading-space": lambda now: f" {now}",
    "trailing-space": lambda now: f"{now} ",
    "underscore": lambda now: f"{str(now)[:4]}_{str(now)[4:]}",
    "all-nines": lambda now: "9" * 13,
    "all-zeros": lambda now: "0" * 13,
    "letters": lambda now: "abcdefghijklm",
}


@pytest.mark.parametrize("form", list(MALFORMED_TIMESTAMPS))
async def test_malformed_timestamps_are_invalid_timestamp(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, form: str
) -> None:
    """Correctly signed, so the only thing wrong is the timestamp."""
    timestamp = MALFORMED_TIMESTAMPS[form](now_ms(clock))
    response = await get_balance(client, signed_headers(creds, timestamp))
    expect_error(response, 401, "INVALID_TIMESTAMP")
    assert "X-RateLimit-Remaining" not in response.headers, describe(response)


async def test_empty_timestamp_is_hmac_required(
    client: httpx.AsyncClient, creds: Credentials
) -> None:
    response = await get_balance(client, signed_headers(creds, ""))
    body = expect_error(response, 401, "HMAC_REQUIRED")
    assert "RT-Timestamp" in (body.get("message") or ""), describe(response)


# --- every error code ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": ""},
        {"RT-Signature": "FA2050B34D3C61025B991E8C82967BC583C02A92ED625D985F46DC7E25BFA934"},
        {"X-Access-Code": "esg_whatever"},
    ],
    ids=[
        "none",
        "basic",
        "bearer-no-token",
        "bearer-blank",
        "empty-authorization",
        "sig-only",
        "other",
    ],
)
async def test_no_authentication(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get(BALANCE, headers=headers)
    body = expect_error(response, 401, "AUTHENTICATION_REQUIRED")
    assert body["error"] == "Authentication required", describe(response)
    assert body["message"] == (
        "Please provide either Bearer token or complete HMAC signature authentication"
    ), describe(response)
    assert "X-RateLimit-Remaining" not in response.headers, describe(response)


@pytest.mark.parametrize(
    "present",
    [
        (),
        ("RT-RequestID",),
        ("RT-Timestamp",),
        ("RT-Signature",),
        ("RT-RequestID", "RT-Timestamp"),
        ("RT-RequestID", "RT-Signature"),
        ("RT-Timestamp", "RT-Signature"),
    ],
)
async def test_access_code_without_the_other_headers_is_hmac_required(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, present: tuple[str, ...]
) -> None:
    full = signed_headers(creds, now_ms(clock))
    headers = {name: full[name] for name in ("RT-AccessCode", *present)}
    response = await get_balance(client, headers)
    body = expect_error(response, 401, "HMAC_REQUIRED")
    message = body.get("message") or ""
    for name in HEADER_NAMES[1:]:
        if name in present:
            assert name not in message, f"{name} is present: {describe(response)}"
        else:
            assert name in message, f"{name} is missing: {describe(response)}"


async def test_unknown_access_code_is_invalid_api_key(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    stranger = Credentials(0, "esg_" + "0" * 24, "sk_unknown")
    response = await get_balance(client, signed_headers(stranger, now_ms(clock)))
    expect_error(response, 401, "INVALID_API_KEY")


async def test_revoked_key_is_invalid_api_key(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, runtime: Runtime
) -> None:
    expect_ok(await get_balance(client, signed_headers(creds, now_ms(clock))))
    await revoke(runtime, creds.access_code)
    response = await get_balance(client, signed_headers(creds, now_ms(clock)))
    expect_error(response, 401, "INVALID_API_KEY")


async def test_bad_signature_is_invalid_signature(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> None:
    wrong_secret = Credentials(creds.account_id, creds.access_code, creds.secret_key + "x")
    response = await get_balance(client, signed_headers(wrong_secret, now_ms(clock)))
    expect_error(response, 401, "INVALID_SIGNATURE")


async def test_signature_over_another_body_is_invalid_signature(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> None:
    headers = signed_headers(creds, now_ms(clock), b'{"a":1}')
    response = await get_balance(client, headers, b'{"a":2}')
    expect_error(response, 401, "INVALID_SIGNATURE")


@pytest.mark.parametrize(
    "request_id",
    [
        "4CE9D9CD-AC9E-4E17-B3A2-C66C358C1CE2",  # upper case
        "4ce9d9cd-ac9e-11ee-b3a2-c66c358c1ce2",  # version 1
        "4ce9d9cd-ac9e-7e17-b3a2-c66c358c1ce2",  # version 7
        "4ce9d9cd-ac9e-4e17-73a2-c66c358c1ce2",  # wrong variant
        "4ce9d9cdac9e4e17b3a2c66c358c1ce2",  # no dashes
        "{4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2}",  # braces
        "urn:uuid:4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2",
        "00000000-0000-0000-0000-000000000000",
        "4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce",  # short
        "request-1",
    ],
)
async def test_validly_signed_non_uuid4_request_id_is_invalid_request_id(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, request_id: str
) -> None:
    response = await get_balance(
        client, signed_headers(creds, now_ms(clock), request_id=request_id)
    )
    expect_error(response, 400, "INVALID_REQUEST_ID")
    # Nothing was spent: the next request is the key's first counted one.
    response = await get_balance(client, signed_headers(creds, now_ms(clock)))
    expect_ok(response)
    assert remaining(response) == 999, describe(response)


async def test_disabled_account_is_invalid_user_and_spends_nothing(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, runtime: Runtime
) -> None:
    await set_account_status(runtime, creds.account_id, "disabled")
    headers = signed_headers(creds, now_ms(clock))
    expect_error(await get_balance(client, headers), 403, "INVALID_USER")
    await set_account_status(runtime, creds.account_id, "active")
    response = await get_balance(client, headers)  # the same request id was not consumed
    expect_ok(response)
    assert remaining(response) == 999, describe(response)


async def test_ip_allowlist(
    client: httpx.AsyncClient,
    client_from: ClientFrom,
    creds: Credentials,
    clock: FrozenClock,
    runtime: Runtime,
) -> None:
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(ApiKey)
            .where(ApiKey.access_code == creds.access_code)
            .values(ip_allowlist=["198.51.100.0/24"])
        )
    headers = signed_headers(creds, now_ms(clock))
    expect_error(await get_balance(client, headers), 403, "IP_NOT_ALLOWED")
    async with client_from(VICTIM_IP) as allowed:
        response = await get_balance(allowed, headers)  # the refused attempt claimed nothing
        expect_ok(response)
        assert remaining(response) == 999, describe(response)


async def test_replay_is_duplicate_request(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> None:
    headers = signed_headers(creds, now_ms(clock))
    expect_ok(await get_balance(client, headers))
    response = await get_balance(client, headers)
    body = expect_error(response, 409, "DUPLICATE_REQUEST")
    assert body.get("details", {}).get("request_id") == headers["RT-RequestID"], describe(response)


# --- malformed headers never cause a 5xx ----------------------------------------------------

HUGE = 10_000


def _malformed_cases() -> dict[str, tuple[dict[str, str | bytes], str]]:
    """name → (header values replacing those of a validly signed request, expected code)."""
    cases: dict[str, tuple[dict[str, str | bytes], str]] = {}
    for name in HEADER_NAMES:
        short = name.removeprefix("RT-").lower()
        # A changed access code names no key; any other changed header breaks the signature.
        changed = "INVALID_API_KEY" if name == "RT-AccessCode" else "INVALID_SIGNATURE"
        cases[f"{short}-latin1"] = ({name: b"\xe9t\xe9-\xff\xfe"}, changed)
        cases[f"{short}-utf8"] = ({name: "ünïcødé-✓".encode()}, changed)
        cases[f"{short}-space"] = ({name: " "}, changed)
        cases[f"{short}-tab"] = ({name: "\t"}, changed)
        cases[f"{short}-nul"] = ({name: b"abc\x00def"}, changed)
        cases[f"{short}-del"] = ({name: b"abc\x7fdef"}, changed)
        cases[f"{short}-empty"] = ({name: ""}, "HMAC_REQUIRED")
        # Longer than 256 characters: refused before any lookup.
        cases[f"{short}-257"] = ({name: "1" * 257}, "INVALID_SIGNATURE")
        cases[f"{short}-huge"] = ({name: "A" * HUGE}, "INVALID_SIGNATURE")
        cases[f"{short}-huge-latin1"] = ({name: b"\xff" * HUGE}, "INVALID_SIGNATURE")
    for case, signature in {
        "non-hex": "Z" * 64,
        "63": "A" * 63,
        "65": "A" * 65,
        "128": "A" * 128,
        "base64": "+2BQs008YQJbmR6MgpZ7xYPAKpLtYl2YX0bcfiW/qTQ=",
        "sha256=": "sha256=" + "a" * 64,
    }.items():
        cases[f"signature-{case}"] = ({"RT-Signature": signature}, "INVALID_SIGNATURE")
    cases["timestamp-fullwidth"] = (
        {"RT-Timestamp": "１６２８６７０４２１０００".encode()},
        "INVALID_SIGNATURE",
    )
    cases["requestid-fullwidth"] = (
        {"RT-RequestID": "４ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2".encode()},
        "INVALID_SIGNATURE",
    )
    return cases


MALFORMED = _malformed_cases()


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_rt_headers_are_4xx_with_a_code(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, case: str
) -> None:
    change, code = MALFORMED[case]
    headers: dict[str, str | bytes] = {**signed_headers(creds, now_ms(clock)), **change}
    raw = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in headers.items()]
    response = await client.request("GET", BALANCE, headers=raw)
    expect_error(response, 401, code)


@pytest.mark.parametrize(
    "value",
    [b"Bearer " + b"a" * HUGE, b"Bearer \xe9\xff.\xfe.\xfd", b"Bearer a\x00b", b"Bearer \xff" * 3],
    ids=["huge", "latin1", "nul", "repeated"],
)
async def test_malformed_authorization_is_invalid_token(
    client: httpx.AsyncClient, value: bytes
) -> None:
    response = await client.request("GET", BALANCE, headers=[(b"Authorization", value)])
    expect_error(response, 401, "INVALID_TOKEN")


@pytest.mark.parametrize("name", HEADER_NAMES)
@pytest.mark.parametrize("second", ["same-value", "genuine-first", "genuine-last"])
async def test_duplicated_rt_header_is_refused(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, name: str, second: str
) -> None:
    """Two values of one signed header are ambiguous (a proxy in front may act on the other
    one), so the request is refused rather than one value picked, even if both are equal."""
    headers = signed_headers(creds, now_ms(clock))
    other = {
        "RT-AccessCode": "esg_" + "f" * 24,
        "RT-RequestID": str(uuid.uuid4()),
        "RT-Timestamp": str(now_ms(clock) + 1),
        "RT-Signature": "0" * 64,
    }[name]
    pair = {
        "same-value": [headers[name], headers[name]],
        "genuine-first": [headers[name], other],
        "genuine-last": [other, headers[name]],
    }[second]
    raw = [(k, v) for k, v in headers.items() if k != name] + [(name, value) for value in pair]
    response = await client.request("GET", BALANCE, headers=raw)
    expect_client_error(response)
    assert response.status_code == 401, describe(response)
    # ... and it claimed nothing: the request sent once is admitted as the key's first.
    response = await get_balance(client, headers)
    expect_ok(response)
    assert remaining(response) == 999, describe(response)


# --- replay --------------------------------------------------------------------------------


async def test_replay_an_hour_later(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> None:
    headers = signed_headers(creds, now_ms(clock))
    request_id = headers["RT-RequestID"]
    expect_ok(await get_balance(client, headers))

    clock.advance(hours=1)
    # The very same request: its timestamp is now stale.
    expect_error(await get_balance(client, headers), 401, "INVALID_TIMESTAMP")
    # Re-signed with a fresh timestamp but the same request id: still a replay.
    resigned = signed_headers(creds, now_ms(clock), request_id=request_id)
    response = await get_balance(client, resigned)
    body = expect_error(response, 409, "DUPLICATE_REQUEST")
    assert body["details"]["request_id"] == request_id, describe(response)


async def test_request_ids_are_kept_at_least_24_hours(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, runtime: Runtime
) -> None:
    headers = signed_headers(creds, now_ms(clock))
    expect_ok(await get_balance(client, headers))
    clock.advance(hours=24, minutes=1)
    await runtime.gate.purge(clock.now())  # what the periodic clean-up would do by then
    resigned = signed_headers(creds, now_ms(clock), request_id=headers["RT-RequestID"])
    expect_error(await get_balance(client, resigned), 409, "DUPLICATE_REQUEST")


async def test_request_ids_are_per_access_code(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, make_account: MakeAccount
) -> None:
    other = await make_account("globex", balance_minor=500)
    request_id = str(uuid.uuid4())
    expect_ok(
        await get_balance(client, signed_headers(creds, now_ms(clock), request_id=request_id))
    )
    response = await get_balance(
        client, signed_headers(other, now_ms(clock), request_id=request_id)
    )
    assert expect_ok(response)["data"]["balance"] == 5.0, describe(response)
    # ... and each key still refuses its own replay.
    for who in (creds, other):
        replay = signed_headers(who, now_ms(clock), request_id=request_id)
        expect_error(await get_balance(client, replay), 409, "DUPLICATE_REQUEST")


# --- 20 concurrent copies of one signed request ---------------------------------------------

COPIES = 20


async def _send_copies(client: httpx.AsyncClient, headers: dict[str, str]) -> list[httpx.Response]:
    return await gather_responses([get_balance(client, headers) for _ in range(COPIES)])


def check_one_winner(responses: list[httpx.Response], request_id: str, limit: int) -> None:
    """Exactly one copy admitted, every other one a DUPLICATE_REQUEST, each counted once."""
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (COPIES - 1), (
        f"statuses {statuses}; first: {describe(responses[0])}"
    )
    for response in responses:
        if response.status_code == 409:
            body = expect_error(response, 409, "DUPLICATE_REQUEST")
            assert body["details"]["request_id"] == request_id, describe(response)
    # Each copy was validly signed, so each was counted exactly once.
    left = sorted(remaining(r) for r in responses)
    assert left == list(range(limit - COPIES, limit)), f"X-RateLimit-Remaining values {left}"


@pytest.mark.postgres
@pytest.mark.parametrize("gate_kind", ["database", "redis"])
async def test_concurrent_copies_of_one_request_admit_exactly_one(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    gate_kind: str,
) -> None:
    use_gate(runtime, gate_kind, monkeypatch)
    real_gate = runtime.gate

    overlapping = OverlappingGate(real_gate, COPIES)
    monkeypatch.setattr(runtime, "gate", overlapping)
    headers = signed_headers(creds, now_ms(clock))
    responses = await _send_copies(client, headers)
    assert overlapping.max_in_flight == COPIES, overlapping.max_in_flight
    check_one_winner(responses, headers["RT-RequestID"], limit=1000)

    monkeypatch.setattr(runtime, "gate", real_gate)
    response = await get_balance(client, signed_headers(creds, now_ms(clock)))
    expect_ok(response)
    assert remaining(response) == 1000 - COPIES - 1, describe(response)


@pytest.mark.postgres
@pytest.mark.parametrize("gate_kind", ["database", "redis"])
async def test_concurrent_copies_check_catches_a_racy_claim(
    client: httpx.AsyncClient,
    creds: Credentials,
    clock: FrozenClock,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    gate_kind: str,
) -> None:
    """The check above fails against a request-id claim that reads before it writes, which is
    only wrong when the copies really overlap: so the test above cannot pass by accident."""
    use_gate(runtime, gate_kind, monkeypatch)
    real_gate = runtime.gate

    # One by one, the racy gate is indistinguishable from the real one ...
    monkeypatch.setattr(runtime, "gate", RacyRequestIdGate(real_gate, parties=1))
    headers = signed_headers(creds, now_ms(clock))
    expect_ok(await get_balance(client, headers))
    expect_error(await get_balance(client, headers), 409, "DUPLICATE_REQUEST")

    # ... but 20 overlapping copies get through it.
    racy = RacyRequestIdGate(real_gate, parties=COPIES)
    monkeypatch.setattr(runtime, "gate", racy)
    headers = signed_headers(creds, now_ms(clock))
    responses = await _send_copies(client, headers)
    assert racy.max_in_flight == COPIES, racy.max_in_flight
    with pytest.raises(AssertionError):
        check_one_winner(responses, headers["RT-RequestID"], limit=1000 - 2)
    admitted = sum(r.status_code == 200 for r in responses)
    assert admitted > 1, [describe(r) for r in responses[:3]]


# --- a flood of badly signed requests with a victim's access code --------------------------

FLOOD = 1000
IP_THRESHOLD = 50


@pytest.mark.parametrize("settings_overrides", [{"auth_failures_per_ip_per_hour": IP_THRESHOLD}])
async def test_bad_signatures_with_a_victims_code_cost_the_victim_nothing(
    client: httpx.AsyncClient,
    client_from: ClientFrom,
    creds: Credentials,
    clock: FrozenClock,
) -> None:
    clock.set(datetime(2031, 3, 4, 12, 34, 56, 250_000, tzinfo=UTC))
    victim = creds
    request_ids = [str(uuid.uuid4()) for _ in range(FLOOD)]
    statuses: dict[int, int] = {}
    for index, request_id in enumerate(request_ids):
        timestamp = str(now_ms(clock))
        headers = {
            "RT-AccessCode": victim.access_code,
            "RT-RequestID": request_id,
            "RT-Timestamp": timestamp,
            "RT-Signature": hand_sign("sk_guess", timestamp, request_id, victim.access_code, b""),
        }
        response = await get_balance(client, headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if index < IP_THRESHOLD:
            expect_error(response, 401, "INVALID_SIGNATURE")
        else:
            expect_error(response, 429, "RATE_LIMIT_EXCEEDED")
            reset = next_hour(clock.now())
            assert response.headers.get("Retry-After") == str(seconds_until(reset, clock.now())), (
                describe(response)
            )
        assert "X-RateLimit-Remaining" not in response.headers, describe(response)
    assert statuses == {401: IP_THRESHOLD, 429: FLOOD - IP_THRESHOLD}, statuses

    async with client_from(VICTIM_IP) as victim_client:
        # The victim's quota is untouched ...
        response = await get_balance(victim_client, signed_headers(victim, now_ms(clock)))
        expect_ok(response)
        assert remaining(response) == 999, describe(response)
        # ... and no request id the attacker sent was burnt (refused by signature or by throttle).
        for n, request_id in enumerate(
            (request_ids[0], request_ids[IP_THRESHOLD], request_ids[-1])
        ):
            headers = signed_headers(victim, now_ms(clock), request_id=request_id)
            response = await get_balance(victim_client, headers)
            expect_ok(response)
            assert remaining(response) == 998 - n, describe(response)

    # The attacker's address stays throttled, even with valid credentials, until the window ends.
    response = await get_balance(client, signed_headers(victim, now_ms(clock)))
    expect_error(response, 429, "RATE_LIMIT_EXCEEDED")
    clock.set(next_hour(clock.now()) - timedelta(milliseconds=1))
    response = await get_balance(client, signed_headers(victim, now_ms(clock)))
    expect_error(response, 429, "RATE_LIMIT_EXCEEDED")
    assert response.headers.get("Retry-After") == "1", describe(response)
    clock.advance(milliseconds=1)
    expect_ok(await get_balance(client, signed_headers(victim, now_ms(clock))))
