"""eSIM Go API v2.5 upstream adapter (see /work/shared/providers/esimgo.md)."""
