"""Business accounts and their pricing rules."""
