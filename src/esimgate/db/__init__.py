"""Database plumbing: engine, sessions, Base and migrations (nothing domain-specific)."""
