"""The package catalogue: packages copied from providers, and per-account prices."""
