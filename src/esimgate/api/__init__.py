"""The HTTP edge: routers per domain, error rendering, the v1 business dialect (and v3 later)."""
