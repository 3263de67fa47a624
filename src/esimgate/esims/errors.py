"""Errors of the usage, status and refresh endpoints."""

from __future__ import annotations

from esimgate.errors import ApiError


class RefreshFailed(ApiError):
    status = 400
    code = "REFRESH_FAILED"
    default_message = "Failed to fetch data from provider"
