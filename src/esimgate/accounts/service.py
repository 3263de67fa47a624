"""Creating and finding business accounts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from esimgate.accounts.models import Account, AccountStatus
from esimgate.accounts.repository import AccountRepository
from esimgate.clock import Clock
from esimgate.money import exponent


class AccountNotFound(LookupError):
    """No account by that id or name."""


@dataclass(frozen=True, slots=True)
class NewAccount:
    name: str
    currency: str = "USD"
    markup_percent_bp: int = 0
    markup_fixed_minor: int = 0


async def create_account(session: AsyncSession, clock: Clock, spec: NewAccount) -> Account:
    """A new active account with an empty wallet."""
    name = spec.name.strip()
    if not name or len(name) > 200:
        raise ValueError("account name must be 1-200 characters")
    currency = spec.currency.upper()
    exponent(currency)  # refuses unsupported currencies
    account = Account(
        name=name,
        currency=currency,
        status=AccountStatus.ACTIVE,
        markup_percent_bp=spec.markup_percent_bp,
        markup_fixed_minor=spec.markup_fixed_minor,
        balance_minor=0,
        created_at=clock.now(),
    )
    return await AccountRepository(session).add(account)


async def find_account(session: AsyncSession, ref: str) -> Account:
    account = await AccountRepository(session).find(ref)
    if account is None:
        raise AccountNotFound(f"no account {ref!r}")
    return account
