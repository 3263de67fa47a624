"""Upstream providers: the port (base.py), the registry and one adapter package per upstream."""
