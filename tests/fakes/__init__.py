"""Test doubles at the upstream boundary only."""
