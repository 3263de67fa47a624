"""Issuing, finding and revoking API keys."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.auth.models import ApiKey, ApiKeyStatus
from esimgate.clock import Clock
from esimgate.secretbox import SecretBox

ACCESS_CODE_PREFIX = "esg_"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret_key: str  # shown once; only its ciphertext is stored


class KeyNotFound(LookupError):
    """No API key with that access code."""


class KeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_access_code(self, access_code: str) -> ApiKey | None:
        if "\x00" in access_code:  # PostgreSQL text cannot hold NUL: the query would fail (500)
            return None
        result = await self.session.execute(select(ApiKey).where(ApiKey.access_code == access_code))
        return result.scalar_one_or_none()

    async def for_account(self, account_id: int) -> Sequence[ApiKey]:
        result = await self.session.execute(
            select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.id)
        )
        return result.scalars().all()

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key


async def issue_key(
    session: AsyncSession, clock: Clock, box: SecretBox, account_id: int
) -> IssuedKey:
    """A new key for the account: a public access code and a secret shown only now."""
    secret_key = "sk_" + secrets.token_urlsafe(32)
    key = ApiKey(
        account_id=account_id,
        access_code=ACCESS_CODE_PREFIX + secrets.token_hex(12),
        secret_encrypted=box.encrypt(secret_key),
        status=ApiKeyStatus.ACTIVE,
        created_at=clock.now(),
    )
    await KeyRepository(session).add(key)
    return IssuedKey(key=key, secret_key=secret_key)


async def revoke_key(session: AsyncSession, clock: Clock, access_code: str) -> ApiKey:
    key = await KeyRepository(session).by_access_code(access_code)
    if key is None:
        raise KeyNotFound(f"no API key {access_code!r}")
    if key.status != ApiKeyStatus.REVOKED:
        key.status = ApiKeyStatus.REVOKED
        key.revoked_at = clock.now()
    return key
