"""Bearer tokens: POST /auth/token, then `Authorization: Bearer …` on GET /balance; every kind of
forged, stale or foreign token is 401 INVALID_TOKEN."""

from __future__ import annotations

import base64
import json
import warnings
from typing import Any

import httpx
import jwt
import pytest

from esimgate.clock import FrozenClock
from esimgate.runtime import Runtime
from tests.auth.helpers import (
    BALANCE,
    TOKEN,
    describe,
    expect_error,
    expect_ok,
    get_balance,
    now_ms,
    remaining,
    revoke,
    set_account_status,
    signed_headers,
)
from tests.conftest import MakeAccount
from tests.support import Credentials

MISSING = object()


async def issue(client: httpx.AsyncClient, creds: Credentials) -> str:
    response = await client.post(
        TOKEN,
        json={
            "accessCode": creds.access_code,
            "secretKey": creds.secret_key,
            "grantType": "client_credentials",
        },
    )
    body = expect_ok(response)
    token = body["data"]["accessToken"]
    assert isinstance(token, str), describe(response)
    return token


async def with_token(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(BALANCE, headers={"Authorization": f"Bearer {token}"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def claims_for(runtime: Runtime, subject: str, **changes: Any) -> dict[str, Any]:
    """The claims the server itself would issue now; ``changes`` overrides (None removes)."""
    now = int(runtime.clock.now().timestamp())
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": runtime.settings.token_issuer,
        "aud": runtime.settings.token_audience,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def forge(runtime: Runtime, claims: dict[str, Any], algorithm: str = "HS256") -> str:
    """A token signed with the server's real token key (so only the claims are wrong)."""
    with warnings.catch_warnings():  # the 32-byte key is short for HS384/HS512: on purpose
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, runtime.box.token_key, algorithm=algorithm)


# --- issuing and using a token -------------------------------------------------------------


async def test_token_response_shape(
    client: httpx.AsyncClient, creds: Credentials, runtime: Runtime
) -> None:
    response = await client.post(
        TOKEN,
        json={
            "accessCode": creds.access_code,
            "secretKey": creds.secret_key,
            "grantType": "client_credentials",
        },
    )
    body = expect_ok(response)
    token = body["data"]["accessToken"]
    assert body == {
        "success": True,
        "data": {"accessToken": token, "tokenType": "Bearer", "expiresIn": 3600},
    }, describe(response)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(
        token,
        runtime.box.token_key,
        algorithms=["HS256"],
        audience="esimgate-business",
        issuer="esimgate",
        options={"verify_iat": False, "verify_nbf": False, "verify_exp": False},
    )
    assert claims["sub"] == creds.access_code
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["nbf"] == claims["iat"] == int(runtime.clock.now().timestamp())


async def test_grant_type_defaults_to_client_credentials(
    client: httpx.AsyncClient, creds: Credentials
) -> None:
    response = await client.post(
        TOKEN, json={"accessCode": creds.access_code, "secretKey": creds.secret_key}
    )
    expect_ok(response)


async def test_token_authenticates_balance_without_request_id_rules(
    client: httpx.AsyncClient, creds: Credentials
) -> None:
    token = await issue(client, creds)
    first = await with_token(client, token)
    assert expect_ok(first) == {
        "success": True,
        "data": {"balance": 1500.0, "currency": "USD"},
    }, describe(first)
    assert first.headers.get("X-RateLimit-Limit") == "1000", describe(first)
    assert remaining(first) == 999, describe(first)
    assert first.headers.get("X-RateLimit-Reset", "").endswith(":00:00Z"), describe(first)
    # The very same request again: bearer requests have no request id to replay.
    second = await with_token(client, token)
    expect_ok(second)
    assert remaining(second) == 998, describe(second)


async def test_token_endpoint_is_not_signed_and_does_not_spend_quota(
    client: httpx.AsyncClient, creds: Credentials
) -> None:
    for _ in range(3):
        token = await issue(client, creds)
    response = await with_token(client, token)
    expect_ok(response)
    assert remaining(response) == 999, describe(response)


async def test_lowercase_scheme_is_accepted(client: httpx.AsyncClient, creds: Credentials) -> None:
    token = await issue(client, creds)
    expect_ok(await client.get(BALANCE, headers={"Authorization": f"bearer {token}"}))


@pytest.mark.parametrize(
    "change",
    [
        {"secretKey": "sk_wrong"},
        {"secretKey": ""},
        {"accessCode": "esg_" + "0" * 24},
        {"accessCode": "esg_" + "0" * 24, "secretKey": "sk_wrong"},
    ],
    ids=["wrong-secret", "empty-secret", "unknown-code", "both-wrong"],
)
async def test_wrong_credentials_are_invalid_api_key(
    client: httpx.AsyncClient, creds: Credentials, change: dict[str, str]
) -> None:
    payload = {
        "accessCode": creds.access_code,
        "secretKey": creds.secret_key,
        "grantType": "client_credentials",
        **change,
    }
    response = await client.post(TOKEN, json=payload)
    if change.get("secretKey") == "":
        expect_error(response, 400, "INVALID_PARAMETER")  # empty is not a secret at all
        return
    body = expect_error(response, 401, "INVALID_API_KEY")
    # The answer does not tell an unknown code from a wrong secret.
    assert body["error"] == "Invalid access code or secret key", describe(response)


async def test_another_keys_secret_is_invalid_api_key(
    client: httpx.AsyncClient, creds: Credentials, make_account: MakeAccount
) -> None:
    other = await make_account("globex")
    response = await client.post(
        TOKEN, json={"accessCode": creds.access_code, "secretKey": other.secret_key}
    )
    expect_error(response, 401, "INVALID_API_KEY")


async def test_revoked_key_gets_no_token(
    client: httpx.AsyncClient, creds: Credentials, runtime: Runtime
) -> None:
    await revoke(runtime, creds.access_code)
    response = await client.post(
        TOKEN, json={"accessCode": creds.access_code, "secretKey": creds.secret_key}
    )
    expect_error(response, 401, "INVALID_API_KEY")


@pytest.mark.parametrize(
    "payload",
    [
        {"grantType": "password"},
        {"grantType": "CLIENT_CREDENTIALS"},
        {"grantType": ""},
        {"grantType": None},
        {"grantType": 1},
        {"accessCode": MISSING},
        {"secretKey": MISSING},
        {"accessCode": None},
        {"accessCode": 12345},
        {"accessCode": "x" * 257},
    ],
)
async def test_bad_token_request_is_invalid_parameter(
    client: httpx.AsyncClient, creds: Credentials, payload: dict[str, Any]
) -> None:
    body = {
        "accessCode": creds.access_code,
        "secretKey": creds.secret_key,
        "grantType": "client_credentials",
        **payload,
    }
    body = {k: v for k, v in body.items() if v is not MISSING}
    response = await client.post(TOKEN, json=body)
    expect_error(response, 400, "INVALID_PARAMETER")


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'"x"', b"{", b"\xff\xfe"],
    ids=["empty", "text", "array", "string", "truncated", "binary"],
)
async def test_malformed_token_request_is_4xx(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(
        TOKEN, content=content, headers={"Content-Type": "application/json"}
    )
    expect_error(response, 400, "INVALID_PARAMETER")


async def test_disabled_account_gets_invalid_user(
    client: httpx.AsyncClient, creds: Credentials, runtime: Runtime
) -> None:
    token = await issue(client, creds)
    await set_account_status(runtime, creds.account_id, "disabled")
    expect_error(await with_token(client, token), 403, "INVALID_USER")
    response = await client.post(
        TOKEN, json={"accessCode": creds.access_code, "secretKey": creds.secret_key}
    )
    expect_error(response, 403, "INVALID_USER")


@pytest.mark.parametrize("settings_overrides", [{"auth_failures_per_ip_per_hour": 5}])
async def test_failed_token_requests_throttle_the_ip(
    client: httpx.AsyncClient, creds: Credentials
) -> None:
    wrong = {"accessCode": creds.access_code, "secretKey": "sk_guess"}
    for _ in range(5):
        expect_error(await client.post(TOKEN, json=wrong), 401, "INVALID_API_KEY")
    response = await client.post(TOKEN, json=wrong)
    expect_error(response, 429, "RATE_LIMIT_EXCEEDED")
    assert int(response.headers["Retry-After"]) >= 1, describe(response)
    # Even the right secret is refused from that address for now.
    right = {"accessCode": creds.access_code, "secretKey": creds.secret_key}
    expect_error(await client.post(TOKEN, json=right), 429, "RATE_LIMIT_EXCEEDED")


# --- token validity in time -----------------------------------------------------------------


async def test_token_expires_after_3600_seconds(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> None:
    token = await issue(client, creds)
    clock.advance(seconds=3599)
    expect_ok(await with_token(client, token))
    clock.advance(seconds=1)
    expect_error(await with_token(client, token), 401, "INVALID_TOKEN")
    clock.advance(days=30)
    expect_error(await with_token(client, token), 401, "INVALID_TOKEN")


async def test_token_is_checked_against_the_server_clock_not_the_wall_clock(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> None:
    """The server's clock is the authority (FrozenClock here; another process's clock in a
    deployment): a token it issued is valid by that clock even when the wall clock is behind."""
    clock.advance(hours=2)
    token = await issue(client, creds)
    response = await with_token(client, token)
    expect_ok(response)


async def test_token_issued_before_the_clock_moved_back_is_not_yet_valid(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> None:
    token = await issue(client, creds)
    clock.advance(seconds=-1)
    expect_error(await with_token(client, token), 401, "INVALID_TOKEN")


# --- forged and foreign tokens --------------------------------------------------------------


def _forgeries(runtime: Runtime, genuine: str, code: str, other_code: str) -> dict[str, str]:
    header, payload, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    now = int(runtime.clock.now().timestamp())
    none_claims = segment(claims)
    flipped = "AA" if signature[-2:] != "AA" else "BB"
    return {
        "alg-none": f"{segment({'alg': 'none', 'typ': 'JWT'})}.{none_claims}.",
        "alg-None": f"{segment({'alg': 'None', 'typ': 'JWT'})}.{none_claims}.",
        "alg-NONE-with-signature": (
            f"{segment({'alg': 'NONE', 'typ': 'JWT'})}.{none_claims}.{signature}"
        ),
        "alg-none-no-dot": f"{segment({'alg': 'none'})}.{none_claims}",
        "alg-HS512-right-key": forge(runtime, claims, "HS512"),
        "alg-HS384-right-key": forge(runtime, claims, "HS384"),
        "header-alg-swapped": f"{segment({'alg': 'HS512', 'typ': 'JWT'})}.{payload}.{signature}",
        "wrong-key": jwt.encode(claims, b"k" * 32, algorithm="HS256"),
        "wrong-key-empty": jwt.encode(claims, b"\x00" * 32, algorithm="HS256"),
        "not-yet-valid": forge(runtime, claims_for(runtime, code, nbf=now + 60)),
        "issued-in-future-nbf": forge(
            runtime, claims_for(runtime, code, iat=now + 60, nbf=now + 60)
        ),
        "expired-by-claims": forge(runtime, claims_for(runtime, code, exp=now)),
        "wrong-issuer": forge(runtime, claims_for(runtime, code, iss="someone-else")),
        "wrong-audience": forge(runtime, claims_for(runtime, code, aud="esimgate-admin")),
        "audience-list-without-ours": forge(runtime, claims_for(runtime, code, aud=["x", "y"])),
        "missing-exp": forge(runtime, claims_for(runtime, code, exp=None)),
        "missing-nbf": forge(runtime, claims_for(runtime, code, nbf=None)),
        "missing-iat": forge(runtime, claims_for(runtime, code, iat=None)),
        "missing-iss": forge(runtime, claims_for(runtime, code, iss=None)),
        "missing-aud": forge(runtime, claims_for(runtime, code, aud=None)),
        "missing-sub": forge(runtime, claims_for(runtime, code, sub=None)),
        "exp-as-string": forge(runtime, claims_for(runtime, code, exp=str(now + 3600))),
        "exp-as-float": forge(runtime, claims_for(runtime, code, exp=now + 3600.5)),
        "sub-not-a-string": forge(runtime, claims_for(runtime, code, sub=123)),
        "sub-empty": forge(runtime, claims_for(runtime, code, sub="")),
        "sub-unknown-key": forge(runtime, claims_for(runtime, "esg_" + "0" * 24)),
        "tampered-sub": f"{header}.{segment({**claims, 'sub': other_code})}.{signature}",
        "tampered-exp": f"{header}.{segment({**claims, 'exp': claims['exp'] + 86400})}.{signature}",
        "tampered-signature": f"{header}.{payload}.{signature[:-2]}{flipped}",
        "signature-stripped": f"{header}.{payload}.",
        "extra-segment": f"{genuine}.{signature}",
        "two-segments": f"{header}.{payload}",
        "garbage": "garbage",
        "dots": "...",
        "empty-segments": "..",
        "not-base64": "%%%.%%%.%%%",
        "json-array-header": f"{segment([])}.{payload}.{signature}",
        "huge": "a" * 10_000,
        "huge-jwt-shaped": f"{header}.{'A' * 10_000}.{signature}",
    }


@pytest.fixture
async def forgeries(
    client: httpx.AsyncClient, creds: Credentials, runtime: Runtime, make_account: MakeAccount
) -> dict[str, str]:
    other = await make_account("globex", balance_minor=1)
    genuine = await issue(client, creds)
    expect_ok(await with_token(client, genuine))  # the starting point is a working token
    cases = _forgeries(runtime, genuine, creds.access_code, other.access_code)
    assert sorted(cases) == sorted(FORGERY_CASES)  # every forgery is exercised below
    return cases


FORGERY_CASES = [
    "alg-none",
    "alg-None",
    "alg-NONE-with-signature",
    "alg-none-no-dot",
    "alg-HS512-right-key",
    "alg-HS384-right-key",
    "header-alg-swapped",
    "wrong-key",
    "wrong-key-empty",
    "not-yet-valid",
    "issued-in-future-nbf",
    "expired-by-claims",
    "wrong-issuer",
    "wrong-audience",
    "audience-list-without-ours",
    "missing-exp",
    "missing-nbf",
    "missing-iat",
    "missing-iss",
    "missing-aud",
    "missing-sub",
    "exp-as-string",
    "exp-as-float",
    "sub-not-a-string",
    "sub-empty",
    "sub-unknown-key",
    "tampered-sub",
    "tampered-exp",
    "tampered-signature",
    "signature-stripped",
    "extra-segment",
    "two-segments",
    "garbage",
    "dots",
    "empty-segments",
    "not-base64",
    "json-array-header",
    "huge",
    "huge-jwt-shaped",
]


@pytest.mark.parametrize("case", FORGERY_CASES)
async def test_forged_tokens_are_invalid_token(
    client: httpx.AsyncClient, forgeries: dict[str, str], case: str
) -> None:
    response = await with_token(client, forgeries[case])
    expect_error(response, 401, "INVALID_TOKEN")
    assert "X-RateLimit-Remaining" not in response.headers, describe(response)


async def test_revoked_keys_token_is_invalid_token(
    client: httpx.AsyncClient, creds: Credentials, runtime: Runtime
) -> None:
    token = await issue(client, creds)
    expect_ok(await with_token(client, token))
    await revoke(runtime, creds.access_code)
    expect_error(await with_token(client, token), 401, "INVALID_TOKEN")


async def test_non_ascii_token_is_invalid_token(client: httpx.AsyncClient) -> None:
    response = await client.get(BALANCE, headers=[(b"Authorization", b"Bearer \xe9\xff.\xfe.\xfd")])
    expect_error(response, 401, "INVALID_TOKEN")


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer    ", "Bearer\t"])
async def test_bearer_without_a_token_is_401(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get(BALANCE, headers={"Authorization": value})
    assert response.status_code == 401, describe(response)
    assert response.json()["code"] in ("AUTHENTICATION_REQUIRED", "INVALID_TOKEN"), describe(
        response
    )


async def test_hmac_headers_take_precedence_over_a_token(
    client: httpx.AsyncClient, creds: Credentials, clock: FrozenClock
) -> None:
    token = await issue(client, creds)
    headers = signed_headers(creds, now_ms(clock))
    headers["RT-Signature"] = "0" * 64
    headers["Authorization"] = f"Bearer {token}"
    expect_error(await get_balance(client, headers), 401, "INVALID_SIGNATURE")


@pytest.mark.parametrize(
    "access_code",
    ["esg_\u0000", "\u0000", "esg_\ud800", "esg_" + "\U0001f600" * 10, "esg_\u00e9t\u00e9"],
    ids=["nul", "only-nul", "lone-surrogate", "emoji", "latin1"],
)
async def test_odd_access_codes_in_the_token_request_are_4xx(
    client: httpx.AsyncClient, access_code: str
) -> None:
    """JSON can carry any code point, including NUL (which PostgreSQL text cannot hold)."""
    body = json.dumps({"accessCode": access_code, "secretKey": "sk_x"}).encode()
    response = await client.post(TOKEN, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 401), describe(response)
    assert response.json()["code"] in ("INVALID_PARAMETER", "INVALID_API_KEY"), describe(response)
