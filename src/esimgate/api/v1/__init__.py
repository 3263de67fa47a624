"""The Business API, v1 — wire-compatible with the seed documents."""
