"""The CLI's environment for tests: the session database, a known master key, no Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esimgate.config import Settings, get_settings
from tests.cli.test_cli import _ledger_problems, with_runtime
from tests.conftest import MASTER_KEY, _settings, _truncate


@pytest.fixture
def cli_settings(
    database_url: str, _schema: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The environment the CLI reads, and Settings for checking what it did; every row the
    commands create is removed afterwards."""
    monkeypatch.setenv("ESIMGATE_DATABASE_URL", database_url)
    monkeypatch.setenv("ESIMGATE_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("ESIMGATE_MASTER_KEY_FILE", str(tmp_path / "unused.key"))
    monkeypatch.delenv("ESIMGATE_REDIS_URL", raising=False)
    monkeypatch.delenv("ESIMGATE_ENV", raising=False)
    settings = _settings(database_url, tmp_path, redis_url=None)
    with_runtime(settings, _truncate)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()
    problems = with_runtime(settings, _ledger_problems)
    with_runtime(settings, _truncate)
    assert not problems, problems
