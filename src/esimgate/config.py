"""One Settings class: everything configurable comes from ``ESIMGATE_*`` environment variables."""

from __future__ import annotations

import enum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """esimgate configuration; see docs/operations.md for every variable."""

    model_config = SettingsConfigDict(env_prefix="ESIMGATE_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite+aiosqlite:///./esimgate.db"
    redis_url: str | None = None
    redis_prefix: str = "esimgate"  # key namespace, so deployments can share one Redis
    # Fernet key(s) for secrets at rest, comma-separated, newest first (rotation keeps old ones).
    # Development generates one into master_key_file on first run; production requires it.
    master_key: SecretStr | None = None
    master_key_file: Path = Path(".esimgate/master.key")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_base_url: str | None = (
        None  # used in links we hand out (QR code URLs); default host:port
    )

    rate_limit_per_hour: int = Field(default=1000, ge=1)
    auth_failures_per_ip_per_hour: int = Field(default=100, ge=1)
    timestamp_window_ms: int = Field(default=300_000, ge=1_000)
    request_id_ttl_hours: int = Field(default=48, ge=24)
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)
    token_issuer: str = "esimgate"  # noqa: S105 - a name, not a secret
    token_audience: str = "esimgate-business"  # noqa: S105 - a name, not a secret

    provider_timeout_seconds: float = Field(default=30.0, gt=0)
    # Pending orders older than this are settled by asking the provider by our reference.
    reconcile_after_seconds: int = Field(default=120, ge=1)
    # An order the provider accepted but never delivered fails (and is refunded) after this.
    pending_deadline_hours: int = Field(default=24, ge=1)

    # Plain-http webhook receivers on loopback addresses (local development and tests only);
    # private and metadata addresses stay refused whatever this says.
    webhook_allow_loopback: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    embedded_worker: bool = True  # run jobs inside `serve` (the embedded default)
    worker_poll_seconds: float = Field(default=2.0, gt=0)
    # The simulator autopilot: moves simulated eSIMs along realistic timelines (`serve --demo`).
    simulator_autopilot: bool = False

    log_level: str = "INFO"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own Settings instead)."""
    return Settings()
