"""The built-in simulator provider: a deterministic, offline stand-in for a real upstream."""
