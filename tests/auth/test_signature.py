"""The RT-* signature: the contract's known-answer vector, verification of malformed input, and
a request signed by an independent implementation accepted over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import httpx
import pytest

from esimgate.auth.signature import is_request_id, parse_timestamp_ms, sign, signing_bytes, verify
from esimgate.clock import FrozenClock
from tests.auth.helpers import BALANCE, describe, expect_ok, now_ms, remaining
from tests.support import Credentials

# business-api.md §2.1 (computed with Python's hmac; not the seed's placeholder digest).
SECRET = "sk_1111"
TIMESTAMP = "1628670421000"
REQUEST_ID = "4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2"
ACCESS_CODE = "esf_11111"
BODY = b'{"packageCode":"PHAJHEAYP"}'
SIGNING_STRING = (
    b'16286704210004ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2esf_11111{"packageCode":"PHAJHEAYP"}'
)
EXPECTED = "FA2050B34D3C61025B991E8C82967BC583C02A92ED625D985F46DC7E25BFA934"


def test_known_answer_vector() -> None:
    assert signing_bytes(TIMESTAMP, REQUEST_ID, ACCESS_CODE, BODY) == SIGNING_STRING
    assert sign(SECRET, TIMESTAMP, REQUEST_ID, ACCESS_CODE, BODY) == EXPECTED


def test_known_answer_vector_matches_plain_hmac() -> None:
    """The vector itself, recomputed without esimgate (guards the constant above)."""
    digest = hmac.new(SECRET.encode(), SIGNING_STRING, hashlib.sha256).hexdigest()
    assert digest.upper() == EXPECTED


@pytest.mark.parametrize(
    "presented", [EXPECTED, EXPECTED.lower(), EXPECTED[:32].lower() + EXPECTED[32:]]
)
def test_verify_accepts_the_vector_in_any_case(presented: str) -> None:
    assert verify(SECRET, TIMESTAMP, REQUEST_ID, ACCESS_CODE, BODY, presented) is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("secret", "sk_1112"),
        ("timestamp", "1628670421001"),
        ("request_id", "4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce3"),
        ("access_code", "esf_11112"),
        ("body", b'{"packageCode":"PHAJHEAYQ"}'),
        ("body", BODY + b" "),
        ("body", b""),
    ],
)
def test_verify_rejects_any_changed_input(field: str, value: object) -> None:
    args: dict[str, object] = {
        "secret": SECRET,
        "timestamp": TIMESTAMP,
        "request_id": REQUEST_ID,
        "access_code": ACCESS_CODE,
        "body": BODY,
    }
    args[field] = value
    assert verify(signature=EXPECTED, **args) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "G" * 64,  # non-hex
        EXPECTED[:-1] + "G",
        EXPECTED[:-1],  # 63 characters
        EXPECTED + "0",  # 65 characters
        EXPECTED + EXPECTED,
        EXPECTED[:-2],
        " " + EXPECTED,
        EXPECTED + " ",
        EXPECTED + "\n",
        EXPECTED[:32] + " " + EXPECTED[33:],
        "0x" + EXPECTED[2:],
        "é" * 64,  # non-ASCII
        EXPECTED[:-1] + "é",
        "０" * 64,  # full-width digits: Unicode digits, not hex
        EXPECTED[:-1] + "٣",  # Arabic-Indic digit
        EXPECTED[:-1] + "\x00",
        "\udcff" * 64,  # lone surrogates (what a mis-decoded header could hold)
        "0" * 64,
        "F" * 10_000,
    ],
)
def test_verify_rejects_malformed_signatures_without_raising(presented: str) -> None:
    assert verify(SECRET, TIMESTAMP, REQUEST_ID, ACCESS_CODE, BODY, presented) is False


def test_verify_does_not_raise_on_non_ascii_signed_fields() -> None:
    """Header values decoded as latin-1 may hold any code point below 256."""
    assert verify(SECRET, "16286704210é0", REQUEST_ID, ACCESS_CODE, BODY, EXPECTED) is False
    assert verify(SECRET, TIMESTAMP, REQUEST_ID, "esf_\xff", BODY, EXPECTED) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2", True),
        ("4CE9D9CD-AC9E-4E17-B3A2-C66C358C1CE2", False),  # upper case
        ("4ce9d9cd-ac9e-1e17-b3a2-c66c358c1ce2", False),  # version 1
        ("4ce9d9cd-ac9e-4e17-c3a2-c66c358c1ce2", False),  # not the RFC 4122 variant
        ("4ce9d9cdac9e4e17b3a2c66c358c1ce2", False),  # no dashes
        ("{4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2}", False),  # braces
        ("urn:uuid:4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2", False),
        ("4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2\n", False),
        (" 4ce9d9cd-ac9e-4e17-b3a2-c66c358c1ce2", False),
        ("", False),
    ],
)
def test_request_id_form(value: str, expected: bool) -> None:
    assert is_request_id(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1628670421000", 1628670421000),
        ("0000000000000", 0),
        ("162867042100", None),  # 12 digits
        ("16286704210000", None),  # 14 digits
        ("+628670421000", None),
        ("-628670421000", None),
        ("1628670421.00", None),
        ("1_628670421000"[:13], None),
        ("１６２８６７０４２１０００", None),  # full-width digits
        ("1628670421000\n", None),
        ("", None),
    ],
)
def test_timestamp_form(value: str, expected: int | None) -> None:
    assert parse_timestamp_ms(value) == expected


# --- over HTTP ---------------------------------------------------------------------------


def _independent_headers(
    creds: Credentials, timestamp: int, body: bytes, upper: bool
) -> dict[str, str]:
    """Signed exactly as the seed documents' Node.js client does, without esimgate's code."""
    request_id = str(uuid.uuid4())
    message = f"{timestamp}{request_id}{creds.access_code}".encode() + body
    digest = hmac.new(creds.secret_key.encode(), message, hashlib.sha256).hexdigest()
    return {
        "RT-AccessCode": creds.access_code,
        "RT-RequestID": request_id,
        "RT-Timestamp": str(timestamp),
        "RT-Signature": digest.upper() if upper else digest.lower(),
    }


@pytest.mark.parametrize("upper", [True, False], ids=["upper-hex", "lower-hex"])
@pytest.mark.parametrize("body", [b"", b'{"packageCode":"PHAJHEAYP"}', bytes(range(256))])
async def test_request_signed_by_an_independent_implementation_is_accepted(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock, body: bytes, upper: bool
) -> None:
    headers = _independent_headers(creds, now_ms(clock), body, upper)
    response = await client.request("GET", BALANCE, headers=headers, content=body)
    payload = expect_ok(response)
    assert payload == {"success": True, "data": {"balance": 1500.0, "currency": "USD"}}, describe(
        response
    )
    assert remaining(response) == 999, describe(response)


async def test_query_string_is_not_signed(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> None:
    headers = _independent_headers(creds, now_ms(clock), b"", upper=True)
    response = await client.get(
        BALANCE, params={"anything": "added-after-signing"}, headers=headers
    )
    expect_ok(response)
