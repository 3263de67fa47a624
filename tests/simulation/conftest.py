"""The whole-system machine, wired to this session's database (see test_whole_system.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from esimgate.orders import tasks
from esimgate.providers.resilience import retry_read
from tests.simulation.test_whole_system import WholeSystem


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def whole_system(
    database_url: str, _schema: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> type[WholeSystem]:
    """The state machine class, pointed at the test database. Each instance is one example
    with its own runtime, app and model; ``teardown()`` drains it and cleans up."""
    # Reconciliation's read retries wait with jitter; the simulation does not need the wait.
    no_wait: Callable[..., object] = lambda call, **kw: retry_read(call, sleep=_no_sleep, **kw)  # noqa: E731
    monkeypatch.setattr(tasks, "retry_read", no_wait)
    monkeypatch.setattr(WholeSystem, "database_url", database_url, raising=False)
    monkeypatch.setattr(WholeSystem, "key_dir", tmp_path, raising=False)
    return WholeSystem
