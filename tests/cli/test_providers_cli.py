"""`esimgate providers add|list|test|disable|enable` against the test database."""

from __future__ import annotations

from sqlalchemy import func, select

from esimgate.catalog.models import PackageOffer
from esimgate.config import Settings
from esimgate.providers.models import ProviderAccount
from esimgate.runtime import Runtime
from tests.cli.test_cli import esimgate, with_runtime


async def _stored(runtime: Runtime) -> tuple[bytes | None, str | None, bool]:
    async with runtime.sessions() as session:
        account = (
            await session.execute(select(ProviderAccount).where(ProviderAccount.name == "backup"))
        ).scalar_one()
        return account.credentials_encrypted, account.base_url, account.enabled


async def _active_offers(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(PackageOffer)
            .join(ProviderAccount, ProviderAccount.id == PackageOffer.provider_account_id)
            .where(ProviderAccount.name == "backup", PackageOffer.active.is_(True))
        )
        return int(count or 0)


async def _cleanup(runtime: Runtime) -> None:
    from sqlalchemy import delete

    async with runtime.sessions() as session, session.begin():
        account_id = await session.scalar(
            select(ProviderAccount.id).where(ProviderAccount.name == "backup")
        )
        if account_id is not None:
            await session.execute(
                delete(PackageOffer).where(PackageOffer.provider_account_id == account_id)
            )
            await session.execute(delete(ProviderAccount).where(ProviderAccount.id == account_id))


def test_provider_accounts(cli_settings: Settings) -> None:
    try:
        added = esimgate(
            "providers",
            "add",
            "backup",
            "--type",
            "simulator",
            "--credential",
            "seed=7",
            "--credential",
            "secret_key=sk_topsecret",
        )
        assert added.exit_code == 0, added.output
        encrypted, base_url, enabled = with_runtime(cli_settings, _stored)
        assert encrypted is not None and b"sk_topsecret" not in encrypted
        assert (base_url, enabled) == (None, True)
        listed = esimgate("providers", "list")
        assert "backup" in listed.output and "sk_topsecret" not in listed.output
        tested = esimgate("providers", "test", "backup")
        assert tested.exit_code == 0 and "packages listed" in tested.output, tested.output
        assert esimgate("catalog", "sync").exit_code == 0
        assert with_runtime(cli_settings, _active_offers) > 200
        assert esimgate("providers", "disable", "backup").exit_code == 0
        assert with_runtime(cli_settings, _stored)[2] is False
        assert esimgate("providers", "enable", "backup").exit_code == 0
        assert with_runtime(cli_settings, _active_offers) > 200
        again = esimgate("providers", "add", "backup", "--type", "simulator")
        assert again.exit_code != 0 and "exists already" in again.output
        bad_type = esimgate("providers", "add", "other", "--type", "nope")
        assert bad_type.exit_code != 0
        bad_pair = esimgate("providers", "add", "other", "--type", "simulator", "--credential", "x")
        assert bad_pair.exit_code != 0 and "KEY=VALUE" in bad_pair.output
        missing = esimgate("providers", "test", "ghost")
        assert missing.exit_code != 0 and "no provider account" in missing.output
    finally:
        with_runtime(cli_settings, _cleanup)
