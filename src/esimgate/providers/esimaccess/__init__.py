"""eSIM Access (Redtea platform) Open API v1 adapter."""
