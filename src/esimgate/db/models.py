"""Imports every model module so Base.metadata knows all tables (for Alembic and tests)."""

from esimgate.accounts import models as accounts_models
from esimgate.auth import models as auth_models
from esimgate.catalog import models as catalog_models
from esimgate.providers import models as providers_models
from esimgate.wallet import models as wallet_models
from esimgate.worker import models as worker_models

__all__ = [
    "accounts_models",
    "auth_models",
    "catalog_models",
    "providers_models",
    "wallet_models",
    "worker_models",
]
