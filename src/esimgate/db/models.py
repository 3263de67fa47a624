"""Imports every model module so Base.metadata knows all tables (for Alembic and tests)."""

from esimgate import coordination
from esimgate.accounts import models as accounts_models
from esimgate.auth import models as auth_models
from esimgate.catalog import models as catalog_models
from esimgate.esims import models as esims_models
from esimgate.orders import models as orders_models
from esimgate.providers import inbound as provider_inbound
from esimgate.providers import models as providers_models
from esimgate.providers.simulator import models as simulator_models
from esimgate.wallet import models as wallet_models
from esimgate.webhooks import models as webhooks_models
from esimgate.worker import models as worker_models

__all__ = [
    "accounts_models",
    "auth_models",
    "catalog_models",
    "coordination",
    "esims_models",
    "orders_models",
    "provider_inbound",
    "providers_models",
    "simulator_models",
    "wallet_models",
    "webhooks_models",
    "worker_models",
]
