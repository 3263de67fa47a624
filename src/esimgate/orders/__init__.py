"""Orders and top-ups: idempotency, the reserve → upstream → settle flow, reconciliation."""
