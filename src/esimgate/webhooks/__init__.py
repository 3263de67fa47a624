"""Outbound events: the outbox (recorded with state changes); delivery comes with webhooks."""
