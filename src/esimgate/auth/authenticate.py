"""Who is calling: HMAC-signed requests (RT-* headers) or bearer tokens, then admission.

Order of checks, chosen so that only a correctly signed request spends a key's quota or
consumes a request id, and so that an attacker learns as little as possible:
IP failure throttle → complete headers → known key → signature → timestamp window →
request-id form → account state → rate limit + request-id claim.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from fastapi import Request

from esimgate.accounts.models import Account, AccountStatus
from esimgate.auth.admission import Quota
from esimgate.auth.errors import (
    AuthenticationRequired,
    DuplicateRequest,
    HmacRequired,
    InvalidApiKey,
    InvalidRequestId,
    InvalidSignature,
    InvalidTimestamp,
    InvalidToken,
    InvalidUser,
    IpNotAllowed,
)
from esimgate.auth.keys import KeyRepository
from esimgate.auth.models import ApiKey, ApiKeyStatus
from esimgate.auth.signature import is_request_id, parse_timestamp_ms, verify
from esimgate.auth.tokens import TokenError
from esimgate.clock import epoch_ms
from esimgate.errors import ApiError, RateLimitExceeded
from esimgate.runtime import Runtime

HMAC_HEADERS = ("RT-AccessCode", "RT-RequestID", "RT-Timestamp", "RT-Signature")
MAX_HEADER = 256  # longer RT-* values are refused before any work


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of one request."""

    account_id: int
    api_key_id: int
    access_code: str
    request_id: str | None  # None for bearer requests
    quota: Quota


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request) -> Caller:
    """Authenticate and admit a Business API request, or raise the matching ApiError."""
    runtime: Runtime = request.app.state.runtime
    now = runtime.clock.now()
    ip = client_ip(request)
    headers = request.headers
    if "rt-accesscode" in headers:
        return await _hmac(request, runtime, now, ip)
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await _bearer(request, runtime, now, ip, token.strip())
    raise AuthenticationRequired()


async def _hmac(request: Request, runtime: Runtime, now: datetime, ip: str) -> Caller:
    await _refuse_throttled_ip(runtime, ip, now)
    # A repeated header is combined as HTTP combines field lines ("a,b"), which no valid
    # value matches: two values of a signed header are refused, never one picked.
    values = {name: ",".join(request.headers.getlist(name)) for name in HMAC_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise HmacRequired(detail=f"Missing headers: {', '.join(missing)}")
    access_code, request_id, timestamp, signature = (str(values[name]) for name in HMAC_HEADERS)
    if any(len(v) > MAX_HEADER for v in (access_code, request_id, timestamp, signature)):
        await _failed(runtime, ip, now, InvalidSignature(detail="RT-* header too long"))
    key, account = await _load_key(runtime, access_code)
    if key is None or account is None:
        await _failed(runtime, ip, now, InvalidApiKey())
    body = await request.body()
    secret = runtime.box.decrypt(key.secret_encrypted)
    if not verify(secret, timestamp, request_id, access_code, body, signature):
        await _failed(runtime, ip, now, InvalidSignature())
    sent_ms = parse_timestamp_ms(timestamp)
    if sent_ms is None or abs(epoch_ms(now) - sent_ms) > runtime.settings.timestamp_window_ms:
        await _failed(runtime, ip, now, InvalidTimestamp())
    if not is_request_id(request_id):
        raise InvalidRequestId()
    _check_account(key, account, ip)
    return await _admit(request, runtime, key, now, request_id)


async def _bearer(request: Request, runtime: Runtime, now: datetime, ip: str, token: str) -> Caller:
    await _refuse_throttled_ip(runtime, ip, now)
    try:
        access_code = runtime.tokens.verify(token, now)
    except TokenError:
        await _failed(runtime, ip, now, InvalidToken())
    key, account = await _load_key(runtime, access_code)
    if key is None or account is None:
        await _failed(runtime, ip, now, InvalidToken())
    _check_account(key, account, ip)
    return await _admit(request, runtime, key, now, None)


async def _load_key(runtime: Runtime, access_code: str) -> tuple[ApiKey | None, Account | None]:
    async with runtime.sessions() as session:
        key = await KeyRepository(session).by_access_code(access_code)
        if key is None or key.status != ApiKeyStatus.ACTIVE:
            return None, None
        return key, await session.get(Account, key.account_id)


def _check_account(key: ApiKey, account: Account, ip: str) -> None:
    if account.status != AccountStatus.ACTIVE:
        raise InvalidUser()
    if key.ip_allowlist and not _ip_allowed(ip, key.ip_allowlist):
        raise IpNotAllowed()


def _ip_allowed(ip: str, allowlist: list[object]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(str(net), strict=False) for net in allowlist)


async def _admit(
    request: Request, runtime: Runtime, key: ApiKey, now: datetime, request_id: str | None
) -> Caller:
    limit = key.rate_limit_per_hour or runtime.settings.rate_limit_per_hour
    request_key = (key.access_code, request_id) if request_id else None
    admission = await runtime.gate.admit(f"key:{key.id}", limit, now, request_key)
    caller = Caller(
        account_id=key.account_id,
        api_key_id=key.id,
        access_code=key.access_code,
        request_id=request_id,
        quota=admission.quota,
    )
    request.state.quota = admission.quota  # rendered as X-RateLimit-* on the response
    if not admission.quota.allowed:
        raise RateLimitExceeded(
            detail=f"Limit of {limit} requests per hour reached",
            headers={"Retry-After": str(admission.quota.retry_after(now))},
        )
    if admission.duplicate:
        assert request_id is not None
        original = await runtime.gate.recall(key.access_code, request_id)
        raise DuplicateRequest(details={"request_id": request_id, **(original or {})})
    return caller


async def _refuse_throttled_ip(runtime: Runtime, ip: str, now: datetime) -> None:
    limit = runtime.settings.auth_failures_per_ip_per_hour
    quota = await runtime.gate.failures_exceeded(ip, limit, now)
    if quota is not None:
        raise RateLimitExceeded(
            detail="Too many failed authentication attempts from this address",
            headers={"Retry-After": str(quota.retry_after(now))},
        )


async def _failed(runtime: Runtime, ip: str, now: datetime, error: ApiError) -> NoReturn:
    await runtime.gate.record_failure(ip, now)
    raise error


async def exchange_credentials(
    request: Request, access_code: str, secret_key: str, *, wrong: str
) -> str:
    """Client credentials → a bearer token (v1 and v3 alike). Wrong credentials count as an
    authentication failure of the client's IP; ``wrong`` is the message they get."""
    runtime: Runtime = request.app.state.runtime
    now = runtime.clock.now()
    ip = client_ip(request)
    await _refuse_throttled_ip(runtime, ip, now)
    key, account = await _load_key(runtime, access_code)
    valid = key is not None and hmac.compare_digest(
        runtime.box.decrypt(key.secret_encrypted).encode(), secret_key.encode()
    )
    if not valid or key is None or account is None:
        await _failed(runtime, ip, now, InvalidApiKey(wrong))
    if account.status != AccountStatus.ACTIVE:
        raise InvalidUser()
    return runtime.tokens.issue(access_code, now)
