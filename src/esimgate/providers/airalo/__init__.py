"""Airalo Partner API v2 adapter (see /work/shared/providers/airalo.md)."""
